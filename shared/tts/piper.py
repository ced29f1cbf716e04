"""Piper (VITS) text-to-speech with the offline ``en_US-joe-medium`` voice."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from shared.audio import Audio, Hertz
from shared.offline_models import piper_joe_voice
from shared.tts import TextToSpeechError, check_text


class PiperTTS:
    """Piper VITS voice (default: the offline joe voice, 22.05 kHz, one male US speaker).

    Parameters
    ----------
    model_path
        A Piper ``.onnx`` voice (its ``.onnx.json`` beside it); None = :func:`piper_joe_voice`.
    noise_scale
        Generator noise (VITS ``noise_scale``; voice default 0.667): more = livelier, less stable.
    length_scale
        Phoneme duration scale (> 1 slower, < 1 faster; default 1.0).
    noise_w
        Duration-predictor noise (VITS ``noise_w``; voice default 0.8): rhythm variation.
    sentence_pause_s
        Silence inserted between sentences.
    threads
        onnxruntime intra-op threads (None = onnxruntime's default).
    """

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        noise_scale: float | None = None,
        length_scale: float | None = None,
        noise_w: float | None = None,
        sentence_pause_s: float = 0.2,
        threads: int | None = None,
    ) -> None:
        import onnxruntime
        from piper import PiperConfig, PiperVoice, SynthesisConfig

        path = Path(model_path) if model_path is not None else piper_joe_voice()
        config_path = Path(f"{path}.json")
        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        import json

        self._voice = PiperVoice(
            session=onnxruntime.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"]),
            config=PiperConfig.from_dict(json.loads(config_path.read_text(encoding="utf-8"))),
            download_dir=Path(os.environ.get("TMPDIR", "/tmp")),
        )
        self._syn_config = SynthesisConfig(
            noise_scale=noise_scale, length_scale=length_scale, noise_w_scale=noise_w, normalize_audio=False
        )
        self.sentence_pause_s = sentence_pause_s

    @property
    def sample_rate_hz(self) -> Hertz:
        return int(self._voice.config.sample_rate)

    def phonemes(self, text: str) -> list[list[str]]:
        """Piper's espeak-ng phonemes, one list per sentence."""
        return self._voice.phonemize(check_text(text))

    def synthesize(
        self,
        text: str,
        *,
        noise_scale: float | None = None,
        length_scale: float | None = None,
        noise_w: float | None = None,
    ) -> Audio:
        """Speak ``text``; keyword arguments override the constructor's settings for this call.

        Raises
        ------
        TextToSpeechError
            Empty text, or text with nothing pronounceable.
        """
        from piper import SynthesisConfig

        text = check_text(text)
        base = self._syn_config
        config = SynthesisConfig(
            noise_scale=base.noise_scale if noise_scale is None else noise_scale,
            length_scale=base.length_scale if length_scale is None else length_scale,
            noise_w_scale=base.noise_w_scale if noise_w is None else noise_w,
            normalize_audio=False,
        )
        gap = np.zeros(round(self.sentence_pause_s * self.sample_rate_hz), dtype=np.float32)
        parts: list[np.ndarray] = []
        for chunk in self._voice.synthesize(text, syn_config=config):
            if parts:
                parts.append(gap)
            parts.append(chunk.audio_float_array)
        if not parts or sum(len(p) for p in parts) == 0:
            raise TextToSpeechError(f"nothing pronounceable in the text {text[:60]!r}")
        samples = np.concatenate(parts).astype(np.float32)
        peak = float(np.max(np.abs(samples)))
        if peak > 0.99:  # VITS can overshoot; keep the natural level otherwise
            samples *= 0.99 / peak
        return Audio(samples, self.sample_rate_hz)
