"""GE2E speaker encoder (the resemblyzer weights, trained as in SV2TTS) and cosine similarity.

encoder = SpeakerEncoder()
reference = encoder.embed([load_audio("a.flac"), load_audio("b.flac")])   # one speaker, merged
score = cosine_similarity(reference, encoder.embed(clone))
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from shared.audio import Audio, SilentAudioError

ENCODER_SAMPLE_RATE_HZ = 16_000
EMBEDDING_DIM = 256


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine of two embeddings (they need not be normalised)."""
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    denominator = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(a @ b / denominator) if denominator > 0 else 0.0


class SpeakerEncoder:
    """GE2E d-vectors (256-d, L2-normed, non-negative) from resemblyzer's ``pretrained.pt``.

    Parameters
    ----------
    threads
        torch intra-op threads to use (None = leave torch's setting alone).
    trim_silences
        Drop pauses longer than ~0.3 s with webrtcvad before embedding (resemblyzer's own
        preprocessing, which the encoder was trained with).
    """

    def __init__(self, threads: int | None = None, trim_silences: bool = True) -> None:
        # torch and resemblyzer (librosa, webrtcvad) load only when an encoder is built.
        import torch
        from resemblyzer import VoiceEncoder

        if threads:
            torch.set_num_threads(threads)
        self._encoder = VoiceEncoder(device="cpu", verbose=False)
        self._encoder.eval()
        self.trim_silences = trim_silences

    def prepare(self, audio: Audio) -> np.ndarray:
        """16 kHz samples, volume-normalised and (optionally) with long silences removed."""
        # resemblyzer stays out of the module's imports (see __init__).
        from resemblyzer.audio import normalize_volume, trim_long_silences

        samples = audio.resample(ENCODER_SAMPLE_RATE_HZ).samples.astype(np.float32)
        samples = normalize_volume(samples, -30, increase_only=True)
        if self.trim_silences and len(samples) > ENCODER_SAMPLE_RATE_HZ:
            trimmed = trim_long_silences(samples)
            if len(trimmed) >= ENCODER_SAMPLE_RATE_HZ // 2:
                samples = trimmed
        if samples.size == 0 or not np.any(samples):
            raise SilentAudioError("no speech to embed")
        return samples

    def embed_utterance(self, audio: Audio) -> np.ndarray:
        """The d-vector of one clip."""
        return self._encoder.embed_utterance(self.prepare(audio)).astype(np.float32)

    def embed_partials(self, audio: Audio) -> np.ndarray:
        """The per-window (1.6 s) d-vectors of one clip, shape (n, 256)."""
        _, partials, _ = self._encoder.embed_utterance(self.prepare(audio), return_partials=True)
        return partials.astype(np.float32)

    def embed(self, audios: Audio | Sequence[Audio]) -> np.ndarray:
        """One speaker's d-vector from one clip or several (mean of the clips' d-vectors, L2-normed)."""
        if isinstance(audios, Audio):
            return self.embed_utterance(audios)
        if not audios:
            raise ValueError("embed needs at least one clip")
        vectors = np.stack([self.embed_utterance(audio) for audio in audios])
        mean = vectors.mean(axis=0)
        return (mean / np.linalg.norm(mean)).astype(np.float32)

    def similarity(self, a: Audio | Sequence[Audio], b: Audio | Sequence[Audio]) -> float:
        return cosine_similarity(self.embed(a), self.embed(b))
