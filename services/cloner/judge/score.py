"""Scoring with the speaker judge: its ONNX network over the shared front end, no torch needed."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime

from services.cloner.judge.front_end import FrontEnd
from shared.audio import Audio

#: The shipped judge (``vcfad judge train`` rebuilds it; models/judge/MODEL_CARD.md).
DEFAULT_JUDGE_DIR = Path(__file__).resolve().parents[3] / "models" / "judge"
GRAPH_FILE, SETTINGS_FILE = "speaker_judge.onnx", "judge.json"


class JudgeModelError(RuntimeError):
    """The judge's model folder is missing or incomplete."""


@dataclass(frozen=True)
class JudgeFiles:
    """A judge model folder: the ONNX graph and its front-end settings."""

    folder: Path

    @property
    def graph(self) -> Path:
        return self.folder / GRAPH_FILE

    @property
    def settings(self) -> Path:
        return self.folder / SETTINGS_FILE


class SpeakerJudge:
    """Speaker similarity from a verification network that no part of the cloner uses.

    Parameters
    ----------
    model_dir
        A folder written by ``vcfad judge train`` (default: the shipped ``models/judge``).
    threads
        ONNX Runtime intra-op threads.
    """

    def __init__(self, model_dir: Path = DEFAULT_JUDGE_DIR, threads: int = 1) -> None:
        files = JudgeFiles(Path(model_dir))
        if not (files.graph.is_file() and files.settings.is_file()):
            raise JudgeModelError(
                f"{files.folder}: no speaker judge there ({GRAPH_FILE} and {SETTINGS_FILE}); "
                "build one with `vcfad judge train`"
            )
        settings = json.loads(files.settings.read_text())
        self.front_end = FrontEnd(**settings["front_end"])
        self.name = str(settings.get("name", files.folder.name))
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self._session = onnxruntime.InferenceSession(
            str(files.graph), sess_options=options, providers=["CPUExecutionProvider"]
        )

    def embed_frames(self, frames: np.ndarray) -> np.ndarray:
        """Unit-length embedding of ``(frames, n_mels)`` log-mels (the front end's layout)."""
        (embedding,) = self._session.run(None, {"log_mel": frames.T[None].astype(np.float32)})
        vector = embedding[0].astype(np.float64)
        return vector / max(float(np.linalg.norm(vector)), 1e-12)

    def embed(self, audio: Audio | Sequence[Audio]) -> np.ndarray:
        """Unit-length embedding of one recording, or of several (their mean direction)."""
        clips = [audio] if isinstance(audio, Audio) else list(audio)
        vectors = np.stack([self.embed_frames(self.front_end.frames(clip)) for clip in clips])
        mean = vectors.mean(axis=0)
        return mean / max(float(np.linalg.norm(mean)), 1e-12)

    def similarity(self, a: Audio | Sequence[Audio], b: Audio | Sequence[Audio]) -> float:
        """Cosine similarity of two voices (1 = same direction)."""
        return float(np.dot(self.embed(a), self.embed(b)))
