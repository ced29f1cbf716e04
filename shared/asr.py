"""The WER judge: Whisper through faster-whisper on offline CTranslate2 weights.

judge = SpeechRecognizer("base")
text = judge.transcribe(audio)
error = word_error_rate(reference="the cat sat", hypothesis=text)
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from pathlib import Path

import jiwer
import numpy as np

from shared.audio import Audio
from shared.offline_models import whisper_model_dir

ASR_SAMPLE_RATE_HZ = 16_000

_NUMBER_WORDS = {
    "0": "zero", "1": "one", "2": "two", "3": "three", "4": "four", "5": "five", "6": "six",
    "7": "seven", "8": "eight", "9": "nine", "10": "ten", "11": "eleven", "12": "twelve",
}  # fmt: skip
_SPELLING = {"mr": "mister", "mrs": "missus", "dr": "doctor", "st": "saint", "ok": "okay"}


def normalize_text(text: str) -> str:
    """Lower-case words without punctuation, so WER counts words, not formatting."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = text.replace("’", "'").replace("-", " ")
    text = re.sub(r"[^a-z0-9' ]+", " ", text)
    words = []
    for word in text.split():
        word = word.strip("'")
        word = _NUMBER_WORDS.get(word, _SPELLING.get(word, word))
        if word:
            words.append(word)
    return " ".join(words)


def word_error_rate(reference: str | Sequence[str], hypothesis: str | Sequence[str]) -> float:
    """WER after :func:`normalize_text`; with lists, the corpus WER (errors / reference words)."""
    references = [reference] if isinstance(reference, str) else list(reference)
    hypotheses = [hypothesis] if isinstance(hypothesis, str) else list(hypothesis)
    references = [normalize_text(r) for r in references]
    hypotheses = [normalize_text(h) for h in hypotheses]
    if not any(references):
        raise ValueError("the reference text has no words")
    return float(jiwer.wer(references, hypotheses))


class SpeechRecognizer:
    """Whisper (faster-whisper, int8, CPU) on offline weights; ``model`` is ``base`` or ``tiny.en``.

    Parameters
    ----------
    model
        Offline model name (see :func:`shared.offline_models.whisper_model_dir`) or a CT2 folder.
    threads
        CPU threads for CTranslate2.
    beam_size
        Decoding beam (5 = Whisper's usual setting).
    """

    def __init__(self, model: str = "base", threads: int = 2, beam_size: int = 5) -> None:
        # CTranslate2 and the Whisper weights load only when a recogniser is built.
        from faster_whisper import WhisperModel

        path = Path(model) if Path(model).is_dir() else whisper_model_dir(model)
        self.name = model
        self.beam_size = beam_size
        self._model = WhisperModel(str(path), device="cpu", compute_type="int8", cpu_threads=threads)

    def transcribe(self, audio: Audio) -> str:
        """English transcript of ``audio`` (any rate; resampled to 16 kHz)."""
        samples = audio.resample(ASR_SAMPLE_RATE_HZ).samples.astype(np.float32)
        segments, _ = self._model.transcribe(
            samples,
            language="en",
            beam_size=self.beam_size,
            condition_on_previous_text=False,
            vad_filter=False,
        )
        return " ".join(segment.text.strip() for segment in segments).strip()

    def word_error_rate(self, audio: Audio, reference: str) -> float:
        return word_error_rate(reference, self.transcribe(audio))
