"""What the cloner's development benches share (``bench/envelope_dev.py``, ``bench/prosody_dev.py``):
their speakers and texts, and how a clone is scored.

Development data only: LibriSpeech **train-clean-100** speakers of ``../shared/data`` (one ~12 s
utterance each, the reference), never the test-other speakers ``vcfad eval-clone`` reports on;
VCTK sentences none of eval-clone's. Scores: GE2E cosine to the reference (resemblyzer) and corpus
WER by Whisper base (faster-whisper); the speaker judge is deliberately not used (it must stay
independent of what is chosen on these runs).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from services.cloner.evaluation import default_data_dir, development_references, development_texts
from services.cloner.voice import ReferenceVoice
from shared.asr import SpeechRecognizer, word_error_rate
from shared.audio import Audio
from shared.speaker import SpeakerEncoder


def add_development_arguments(
    parser: argparse.ArgumentParser, *, first: int, speakers: int, texts: int, voice_cache: str
) -> None:
    """``--first``, ``--speakers``, ``--texts``, ``--voice-cache`` and ``--output`` with these defaults."""
    parser.add_argument("--first", type=int, default=first, help="first train-clean-100 speaker (manifest order)")
    parser.add_argument("--speakers", type=int, default=speakers)
    parser.add_argument("--texts", type=int, default=texts, help="sentences per speaker")
    parser.add_argument("--voice-cache", type=Path, default=Path(voice_cache), help="one per run")
    parser.add_argument("--output", type=Path, default=None)


def development_data(
    parser: argparse.ArgumentParser, args: argparse.Namespace
) -> tuple[list[tuple[str, Path]], list[str]]:
    """(speaker, reference) pairs and the sentences of a run; a CLI error names what is missing or wrong."""
    data_dir = default_data_dir()
    manifest = data_dir / "librispeech" / "manifest.tsv"
    if not manifest.exists():
        parser.error(f"{manifest} not found: the shared speech data is needed (see ../shared/data/README.md)")
    if min(args.first, args.speakers - 1, args.texts - 1) < 0:
        parser.error("--first ≥ 0, --speakers ≥ 1 and --texts ≥ 1")
    return development_references(data_dir, args.first, args.speakers), development_texts(data_dir)


class CloneScorer:
    """Scores clones into named rows: GE2E cosine to the reference, WER, and any extra measure."""

    def __init__(self, encoder: SpeakerEncoder) -> None:
        self.encoder = encoder
        self.recognizer = SpeechRecognizer("base")
        self._scores: dict[str, list[dict[str, float]]] = {}

    def score(self, row: str, clone: Audio, voice: ReferenceVoice, text: str, **extra: float) -> None:
        hypothesis = self.recognizer.transcribe(clone)
        self._scores.setdefault(row, []).append(
            {
                "ge2e": float(self.encoder.embed(clone) @ voice.embedding),
                "errors": word_error_rate(text, hypothesis) * len(text.split()),
                "words": len(text.split()),
                **extra,
            }
        )

    def rows(self) -> list[dict]:
        """Per row: clones, the mean of each measure over the clones it was measured on (GE2E and
        the extras; NaN = not measurable) and the corpus WER."""
        out = []
        for row, scores in self._scores.items():
            means = {
                name: round(float(np.nanmean([score[name] for score in scores])), 4)
                for name in scores[0]
                if name not in ("errors", "words")
            }
            errors, words = sum(s["errors"] for s in scores), sum(s["words"] for s in scores)
            out.append({"row": row, "clones": len(scores), **means, "wer": round(errors / words, 4)})
        return out
