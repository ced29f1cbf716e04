"""The envelope stage: the reference speaker's spectral envelope, phone by phone.

The style search moves the whole voice; what a speaker-verification model hears beyond it is how
each *sound* is shaped (formants of each vowel, the colour of each fricative). That detail is
learned here from a synthetic parallel recording:

1. the reference is transcribed (Whisper; pieces of at most ``segment_s``, at most
   ``max_reference_s`` in all);
2. the enrolled voice speaks the same words, so synthetic and real speech say the same phones;
3. dynamic time warping on Whisper-base hidden states (block ``alignment_layer``: what was said,
   little of who said it) aligns them frame by frame, and each aligned pair of speech frames gives
   a log-mel *offset* (real − synthetic) keyed by the synthetic frame's cepstra;
4. a new clone's frame takes the mean offset of its ``neighbours`` nearest synthetic frames
   (the match is synthetic against synthetic — the same voice and synthesizer — so it finds the same
   phone reliably, where matching a clone against the real speaker's frames does not), weighted
   down when even the nearest is far (a sound the reference never held: no offset is better than
   another sound's).

The offsets have their mean removed: the stage reshapes sounds relative to each other and leaves
the long-term spectrum (room, microphone, overall tilt) to the channel stage (:mod:`shared.channel`).
Gains are smoothed over time, capped at ``max_gain_db``, and applied to the clone's STFT magnitude
with its phase kept, so the synthesizer's words and pitch are untouched.
"""

from __future__ import annotations

import hashlib
import io
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path

import librosa
import numpy as np
import scipy.fft
import scipy.ndimage
from sklearn.neighbors import NearestNeighbors

from shared.asr import SpeechRecognizer
from shared.audio import Audio, Decibels, Hertz, Seconds
from shared.files import write_atomic
from shared.log_mel import WHISPER_MAX_FRAMES, WHISPER_SAMPLE_RATE_HZ, whisper_log_mel
from shared.offline_models import whisper_model_dir

logger = logging.getLogger(__name__)

#: Bump when the fitted correction's meaning changes (cached corrections are then refitted).
ENVELOPE_VERSION = 3

#: Features per 10 ms frame on which synthetic and real speech are aligned (None = cepstra).
AlignmentFeatures = Callable[[Audio], np.ndarray]


@dataclass(frozen=True)
class EnvelopeAnalysis:
    """How speech is analysed for the envelope stage (fixed: a fitted correction is only valid for it)."""

    sample_rate_hz: Hertz = 16_000
    hop_s: Seconds = 0.010
    window_s: Seconds = 0.025
    fft_size: int = 512
    bands: int = 40
    low_hz: float = 60.0
    high_hz: float = 7_600.0
    #: Cepstra used to match frames (c1..c``cepstra``, mean-normalised per recording).
    cepstra: int = 20
    #: Frames of context on each side stacked into a frame's matching features.
    context_frames: int = 1
    #: Frames quieter than the loudest by more than this are pauses: no offsets learned from them.
    speech_floor_db: Decibels = 35.0
    #: Whisper-base block whose hidden states align synthetic and real speech.
    alignment_layer: int = 4
    #: A frame's gain is weighted by exp(−(d / (width · d₀))²), d its distance to the nearest
    #: synthetic frame and d₀ the typical such distance within the reference's own synthetic frames.
    confidence_width: float = 2.0
    #: A pair whose synthetic and real durations differ by more than this factor is not aligned
    #: (a misheard or repeated transcript: DTW would pair unrelated frames). Pauses and speaking
    #: rate alone make real speech up to ~1.6× the synthetic's length.
    max_duration_ratio: float = 2.0
    #: Longest synthetic piece aligned: Whisper's window (its frames end there).
    max_synthetic_s: Seconds = WHISPER_MAX_FRAMES * 0.010

    def log_mel_db(self, audio: Audio) -> np.ndarray:
        """(frames, bands) log-mel power in dB, frames every ``hop_s`` centred on multiples of it."""
        samples = audio.resample(self.sample_rate_hz).samples
        hop, window = self._samples(self.hop_s), self._samples(self.window_s)
        power = np.abs(librosa.stft(samples, n_fft=self.fft_size, hop_length=hop, win_length=window)) ** 2
        mel = librosa.feature.melspectrogram(
            S=power, sr=self.sample_rate_hz, n_mels=self.bands, fmin=self.low_hz, fmax=self.high_hz
        )
        return (10.0 * np.log10(mel + 1e-10)).T

    def matching_features(self, log_mel_db: np.ndarray) -> np.ndarray:
        """Mean-normalised cepstra with ``context_frames`` neighbours stacked on each side."""
        cepstra = scipy.fft.dct(log_mel_db, type=2, norm="ortho", axis=1)[:, 1 : self.cepstra + 1]
        cepstra = cepstra - cepstra.mean(axis=0)
        context = self.context_frames
        padded = np.pad(cepstra, ((context, context), (0, 0)), mode="edge")
        return np.concatenate([padded[i : i + len(cepstra)] for i in range(2 * context + 1)], axis=1)

    def speech_frames(self, log_mel_db: np.ndarray) -> np.ndarray:
        """Boolean mask of the frames within ``speech_floor_db`` of the loudest."""
        level_db = 10.0 * np.log10(np.sum(10.0 ** (log_mel_db / 10.0), axis=1) + 1e-10)
        return level_db > level_db.max() - self.speech_floor_db

    def band_centres_hz(self) -> np.ndarray:
        """Centre frequency of each mel band, in Hz."""
        return librosa.mel_frequencies(self.bands + 2, fmin=self.low_hz, fmax=self.high_hz)[1:-1]

    def _samples(self, seconds: Seconds) -> int:
        return round(seconds * self.sample_rate_hz)


@dataclass(frozen=True)
class EnvelopeCorrection:
    """A fitted envelope stage: synthetic frames' matching features and their offsets to the real speaker."""

    features: np.ndarray  # (pairs, matching dims) float32
    offsets_db: np.ndarray  # (pairs, bands) float32, mean removed
    neighbours: int
    max_gain_db: Decibels
    smoothing_frames: int
    #: Median distance (scaled features) from a synthetic frame to its nearest other one.
    typical_distance: float
    analysis: EnvelopeAnalysis = EnvelopeAnalysis()

    @classmethod
    def fit(
        cls,
        pairs: Sequence[tuple[Audio, Audio]],
        neighbours: int,
        max_gain_db: Decibels,
        smoothing_frames: int,
        alignment_features: AlignmentFeatures | None = None,
        analysis: EnvelopeAnalysis | None = None,
    ) -> EnvelopeCorrection:
        """Learn the offsets from (synthetic, real) recordings of the same words.

        Parameters
        ----------
        pairs
            (synthetic, real) recordings of the same words, any sample rates.
        neighbours, max_gain_db, smoothing_frames
            How the correction is applied (see :meth:`gains_db`).
        alignment_features
            Features that align the two voices (e.g. :class:`WhisperFrames`); None = the cepstra.
        analysis
            The analysis settings (default :class:`EnvelopeAnalysis`).

        Raises
        ------
        ValueError
            Fewer aligned speech frames than ``neighbours``.
        """
        analysis = analysis or EnvelopeAnalysis()
        features, offsets = [], []
        for synthetic, real in pairs:
            ratio = synthetic.duration_s / max(real.duration_s, 1e-9)
            too_long = synthetic.duration_s > analysis.max_synthetic_s
            if too_long or not 1 / analysis.max_duration_ratio <= ratio <= analysis.max_duration_ratio:
                logger.info("envelope: %.1f s synthetic, %.1f× the real: not aligned", synthetic.duration_s, ratio)
                continue
            synthetic_db, real_db = analysis.log_mel_db(synthetic), analysis.log_mel_db(real)
            synthetic_features = analysis.matching_features(synthetic_db)
            if alignment_features is None:
                aligned_x, aligned_y, metric = synthetic_features, analysis.matching_features(real_db), "euclidean"
            else:
                aligned_x = alignment_features(synthetic)[: len(synthetic_db)]
                aligned_y, metric = alignment_features(real)[: len(real_db)], "cosine"
            _, path = librosa.sequence.dtw(X=aligned_x.T, Y=aligned_y.T, metric=metric)
            both_speech = analysis.speech_frames(synthetic_db)[path[:, 0]] & analysis.speech_frames(real_db)[path[:, 1]]
            i, j = path[both_speech, 0], path[both_speech, 1]
            # Where the real speech is slower, DTW pairs one synthetic frame with several real ones:
            # one row per synthetic frame (their mean offset), so repeated rows neither shrink the
            # typical distance nor crowd the neighbours.
            frames, row = np.unique(i, return_inverse=True)
            summed = np.zeros((len(frames), analysis.bands))
            np.add.at(summed, row, real_db[j] - synthetic_db[i])
            features.append(synthetic_features[frames])
            offsets.append(summed / np.bincount(row)[:, None])
        all_features = np.concatenate(features) if features else np.zeros((0, 1))
        if len(all_features) < neighbours:
            raise ValueError(f"only {len(all_features)} aligned speech frames (need {neighbours})")
        all_offsets = np.concatenate(offsets)
        scaled = all_features / _feature_scale(all_features)
        distances, _ = NearestNeighbors(n_neighbors=2).fit(scaled).kneighbors(scaled)
        return cls(
            features=all_features.astype(np.float32),
            offsets_db=(all_offsets - all_offsets.mean(axis=0)).astype(np.float32),
            neighbours=neighbours,
            max_gain_db=max_gain_db,
            smoothing_frames=smoothing_frames,
            typical_distance=max(float(np.median(distances[:, 1])), 1e-6),
            analysis=analysis,
        )

    @cached_property
    def _index(self) -> tuple[NearestNeighbors, np.ndarray]:
        """The synthetic frames' neighbour index and feature scale, built on first use."""
        scale = _feature_scale(self.features)
        return NearestNeighbors(n_neighbors=self.neighbours).fit(self.features / scale), scale

    def gains_db(self, audio: Audio) -> np.ndarray:
        """(frames, bands) gain for each analysis frame of ``audio``."""
        features = self.analysis.matching_features(self.analysis.log_mel_db(audio))
        index, scale = self._index
        distances, nearest = index.kneighbors(features / scale)
        width = self.analysis.confidence_width * self.typical_distance
        confidence = np.exp(-((distances[:, :1] / width) ** 2))
        gains = self.offsets_db[nearest].mean(axis=1) * confidence
        if self.smoothing_frames > 1:
            gains = scipy.ndimage.uniform_filter1d(gains, self.smoothing_frames, axis=0, mode="nearest")
        return np.clip(gains, -self.max_gain_db, self.max_gain_db)

    def apply(self, audio: Audio) -> Audio:
        """``audio`` with each frame's envelope moved toward the speaker's; same rate and length."""
        gains = self.gains_db(audio)
        rate = audio.sample_rate_hz
        analysis = self.analysis
        hop = round(analysis.hop_s * rate)
        window = round(analysis.window_s * rate)
        fft_size = round(analysis.fft_size * rate / analysis.sample_rate_hz)
        spectrum = librosa.stft(audio.samples, n_fft=fft_size, hop_length=hop, win_length=window)
        # Gains at this STFT's frame times (its hop need not be exactly the analysis hop, e.g. at
        # 22.05 kHz), edges held.
        position = np.clip(np.arange(spectrum.shape[1]) * hop / rate / analysis.hop_s, 0, len(gains) - 1)
        below = np.minimum(position.astype(int), len(gains) - 1)
        above = np.minimum(below + 1, len(gains) - 1)
        weight = (position - below)[:, None]
        timed = gains[below] * (1 - weight) + gains[above] * weight
        # Bands to FFT bins; above the analysed range (high_hz .. the analysis Nyquist) the gain
        # fades to 0 dB: nothing was measured there.
        frequencies = librosa.fft_frequencies(sr=rate, n_fft=fft_size)
        nyquist_hz = analysis.sample_rate_hz / 2
        fade = np.clip((nyquist_hz - frequencies) / (nyquist_hz - analysis.high_hz), 0.0, 1.0)
        centres = analysis.band_centres_hz()
        linear_db = np.stack([np.interp(frequencies, centres, row) for row in timed], axis=1) * fade[:, None]
        spectrum *= 10.0 ** (linear_db / 20.0)
        samples = librosa.istft(spectrum, hop_length=hop, win_length=window, n_fft=fft_size, length=audio.num_samples)
        return Audio(samples.astype(np.float32), rate)

    # -- storage ----------------------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        """The fitted correction as ``.npz`` bytes (the analysis settings are not stored: fixed)."""
        buffer = io.BytesIO()
        np.savez(
            buffer,
            features=self.features,
            offsets_db=self.offsets_db,
            settings=np.array(
                [self.neighbours, self.max_gain_db, self.smoothing_frames, self.typical_distance], np.float64
            ),
        )
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, analysis: EnvelopeAnalysis | None = None) -> EnvelopeCorrection:
        """The correction :meth:`to_bytes` wrote."""
        with np.load(io.BytesIO(data)) as stored:
            neighbours, max_gain_db, smoothing, typical_distance = stored["settings"]
            return cls(
                features=stored["features"],
                offsets_db=stored["offsets_db"],
                neighbours=int(neighbours),
                max_gain_db=float(max_gain_db),
                smoothing_frames=int(smoothing),
                typical_distance=float(typical_distance),
                analysis=analysis or EnvelopeAnalysis(),
            )


def _feature_scale(features: np.ndarray) -> np.ndarray:
    return features.std(axis=0) + 1e-6


class WhisperFrames:
    """Whisper-base hidden states of one block, L2-normalised, one row per 10 ms frame: features
    that say what was said far more than who said it, for aligning two voices."""

    def __init__(self, layer: int) -> None:
        # torch loads only in a process that fits the stage (the cloner's CLI and tests import this
        # module); its thread count is the process's (Cloner.from_settings sets it).
        import torch

        from shared.whisper_encoder import WhisperEncoder

        self._torch = torch
        self._encoder = WhisperEncoder.from_ct2(whisper_model_dir("base"), num_layers=layer).eval()

    def __call__(self, audio: Audio) -> np.ndarray:
        """(frames, width) at 10 ms of the first 30 s of ``audio``."""
        log_mel = whisper_log_mel(audio.resample(WHISPER_SAMPLE_RATE_HZ).samples)[None, :, :WHISPER_MAX_FRAMES]
        with self._torch.inference_mode():
            hidden = self._encoder(self._torch.from_numpy(log_mel))[-1][0].numpy()
        hidden = hidden / (np.linalg.norm(hidden, axis=1, keepdims=True) + 1e-9)
        return np.repeat(hidden, 2, axis=0)  # the encoder's 20 ms frames as two 10 ms ones


def reference_pieces(clips: Sequence[Audio], segment_s: Seconds, max_total_s: Seconds) -> list[Audio]:
    """The reference cut into pieces of at most ``segment_s``, ``max_total_s`` in all (in order)."""
    pieces: list[Audio] = []
    total_s = 0.0
    for clip in clips:
        rate = clip.sample_rate_hz
        start = 0  # whole samples, so pieces neither overlap nor exceed their bounds
        while start < clip.num_samples:
            length = min(int(segment_s * rate), clip.num_samples - start, int((max_total_s - total_s) * rate))
            if length <= 0:
                break
            if length >= rate:  # shorter leftovers hold no word worth aligning
                pieces.append(Audio(clip.samples[start : start + length], rate))
                total_s += length / rate
            start += length
    return pieces


@dataclass(frozen=True)
class EnvelopeSettings:
    """What a fitted correction depends on besides the voice (part of its cache key). The first
    three come from :class:`~services.cloner.config.ClonerSettings` (``envelope_*``), their one default."""

    neighbours: int
    max_gain_db: Decibels
    max_reference_s: Seconds
    smoothing_frames: int = 3
    segment_s: Seconds = 20.0
    asr_model: str = "base"


class EnvelopeFitter:
    """Fits :class:`EnvelopeCorrection` for an enrolled voice (transcribe, speak, align), cached on disk."""

    def __init__(self, settings: EnvelopeSettings, cache_dir: Path, threads: int = 2) -> None:
        self.settings = settings
        self.cache_dir = cache_dir
        self.recognizer = SpeechRecognizer(settings.asr_model, threads=threads)
        self.alignment = WhisperFrames(EnvelopeAnalysis().alignment_layer)

    def cache_path(self, voice_id: str) -> Path:
        digest = hashlib.sha256(
            f"{ENVELOPE_VERSION}|{voice_id}|{sorted(asdict(self.settings).items())}|{EnvelopeAnalysis()}".encode()
        ).hexdigest()[:24]
        return self.cache_dir / f"envelope-{digest}.npz"

    def fit(
        self,
        clips: Sequence[Audio],
        speak: Callable[[str], Audio],
        voice_id: str,
        progress: Callable[[float, str], None] | None = None,
    ) -> EnvelopeCorrection | None:
        """The correction for the voice ``speak`` speaks in, toward the speaker of ``clips``.

        Parameters
        ----------
        clips
            The reference recordings (at most ``max_reference_s`` of them is used).
        speak
            Text → the enrolled voice speaking it (the backend's synthesis).
        voice_id
            Names the enrolled voice and the reference: the cache key.
        progress
            Called with (fraction, stage) per reference piece.

        Returns
        -------
        EnvelopeCorrection or None
            None when the reference holds too little recognisable speech to learn from (the clone
            is then left as is; remembered, so the next process does not try again).
        """
        path = self.cache_path(voice_id)
        nothing_learned = path.with_suffix(".none")  # a reference with too little to learn from, once
        if path.exists():
            return EnvelopeCorrection.from_bytes(path.read_bytes())
        if nothing_learned.exists():
            return None
        pieces = reference_pieces(clips, self.settings.segment_s, self.settings.max_reference_s)
        pairs = []
        for done, piece in enumerate(pieces):
            words = self.recognizer.transcribe(piece)
            if any(character.isalpha() for character in words):
                try:
                    pairs.append((speak(words), piece))
                except ValueError as error:  # text the synthesizer refuses (e.g. symbols only)
                    logger.info("envelope: a reference piece's words were not spoken (%s)", error)
            if progress:
                progress((done + 1) / len(pieces), "fitting the voice's envelope")
        try:
            correction = EnvelopeCorrection.fit(
                pairs,
                self.settings.neighbours,
                self.settings.max_gain_db,
                self.settings.smoothing_frames,
                alignment_features=self.alignment,
            )
        except ValueError as error:
            reason = str(error)
            logger.warning("envelope stage skipped for this voice: %s", reason)
            write_atomic(nothing_learned, lambda partial: partial.write_text(reason, encoding="utf-8"))
            return None
        write_atomic(path, lambda partial: partial.write_bytes(correction.to_bytes()))
        return correction
