"""Scoring recordings with a trained detector through ONNX Runtime.

:class:`Detector` is what the CLI, the evaluation and the detector service use: one ONNX
Runtime session, loaded once, shared by every call.

Scores are probabilities that the clip is synthetic. A recording up to
:attr:`DetectorSettings.clip_window_s` long is scored whole; a longer one is scored in windows
of that length (half overlapping) and the clip score is their mean. ``timeline=True`` adds
scores of short windows (``timeline_window_s`` every ``timeline_hop_s``) so a user sees where
a recording turns synthetic.

With a :class:`~shared.watermark.Watermarker` (the service's and the CLI's default), every
recording is also read for the vcfad watermark: a clip that carries it is labelled ``fake`` whatever
its score, and the response says why and where (``watermark``).
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from threadpoolctl import ThreadpoolController

from services.detector.input_floor import raise_floor
from services.detector.model_files import GRAPH_KINDS, ModelFileError, ModelSpec, default_model_dir, probe_graph_path
from services.detector.seed_features import SeedFeatures
from shared.audio import Audio, AudioFile, LoadPolicy, Seconds, load_audio
from shared.log_mel import whisper_log_mel
from shared.schemas import DetectResponse, WindowScore
from shared.watermark import Watermarker

#: How recordings are prepared for scoring; training uses the same policy (services/detector/training/train.py).
DETECTION_LOAD_POLICY = LoadPolicy(min_duration_s=0.3)


def assemble_graph(model_dir: Path) -> Path:
    """Build a ``whisper-probe`` or ``whisper-frames`` model's ONNX graph into the cache (a model's
    first use), in a child process: assembling it takes torch and the training code, which a
    serving process never loads.

    Raises
    ------
    ModelFileError
        The graph could not be assembled; the message ends with the child's last words.
    """
    command = [sys.executable, "-m", "vcfad.cli", "build-detector-graph", "--model", str(model_dir)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    graph = probe_graph_path(model_dir)
    if result.returncode != 0 or not graph.exists():
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise ModelFileError(f"{model_dir}: could not assemble its ONNX graph: {' | '.join(tail)}")
    return graph


@dataclass(frozen=True)
class WindowPlan:
    clip_window_s: Seconds = 8.0
    timeline_window_s: Seconds = 2.0
    timeline_hop_s: Seconds = 0.5


class Detector:
    """A loaded detector model. Thread-safe: ONNX Runtime sessions may be shared across threads."""

    def __init__(
        self,
        model_dir: Path,
        *,
        threads: int = 1,
        load_policy: LoadPolicy | None = None,
        windows: WindowPlan | None = None,
        watermarker: Watermarker | None = None,
    ) -> None:
        # Here, not at the top: `vcfad --help` and the gateway import this package without scoring.
        import onnxruntime

        self.model_dir = Path(model_dir)
        self.spec = ModelSpec.read(self.model_dir)
        self.load_policy = load_policy or DETECTION_LOAD_POLICY
        self.windows = windows or WindowPlan()
        #: Reads the vcfad watermark with this deployment's key; None: no watermark is read.
        self.watermarker = watermarker
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        if self.spec.kind in GRAPH_KINDS:
            onnx_path = probe_graph_path(self.model_dir)
            if not onnx_path.exists():
                assemble_graph(self.model_dir)
        else:
            onnx_path = self.model_dir / "model.onnx"
            self._seed_features = SeedFeatures()
        self.onnx_path = onnx_path
        self._session = onnxruntime.InferenceSession(
            str(onnx_path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._input_name = self._session.get_inputs()[0].name
        # The front end's small matrix products must not wake OpenBLAS's thread pool: its spinning
        # threads fight ONNX Runtime's for the cores and double the latency (bench/detector_speed.py).
        self._blas = ThreadpoolController()

    @classmethod
    def from_model_dir(
        cls, model_dir: Path | None = None, *, threads: int = 1, watermarker: Watermarker | None = None
    ) -> Detector:
        """Load a model folder (None: the shipped ``default`` model)."""
        return cls(model_dir or default_model_dir(), threads=threads, watermarker=watermarker)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def threshold(self) -> float:
        return self.spec.threshold

    # -- scoring ----------------------------------------------------------------------------
    def score_clips(self, clips: list[Audio]) -> np.ndarray:
        """P(fake) for each prepared (16 kHz, trimmed, normalised) clip, each scored whole."""
        if self.spec.input_floor_dbfs is not None:
            clips = [self.with_input_floor(clip, self.spec.input_floor_dbfs) for clip in clips]
        if self.spec.kind == "seed-baseline":
            with self._blas.limit(limits=1, user_api="blas"):
                features = np.stack([self._seed_features(clip) for clip in clips])
            return self._session.run(None, {self._input_name: features})[0].reshape(-1)[: len(clips)]
        scores = np.empty(len(clips), dtype=np.float32)
        # Equal-length clips (timeline windows) run as one batch, except through an int8 graph: it
        # quantizes each product's input over the whole batch, so a clip's score would depend on
        # the clips beside it.
        by_length: dict[object, list[int]] = {}
        one_by_one = self.spec.precision != "float32"
        for index, clip in enumerate(clips):
            by_length.setdefault(index if one_by_one else clip.num_samples, []).append(index)
        for indices in by_length.values():
            with self._blas.limit(limits=1, user_api="blas"):
                batch = np.stack([whisper_log_mel(clips[index].samples) for index in indices])
            scores[indices] = self._session.run(None, {self._input_name: batch})[0].reshape(-1)
        return scores

    @staticmethod
    def with_input_floor(clip: Audio, floor_dbfs: float) -> Audio:
        """The clip with its noise floor raised to ``floor_dbfs`` by the training augmentation's
        own step, with a fixed seed: a clip's score does not change from call to call.

        Applied to the prepared (loudness-normalised, trimmed) clip; the builder raises the floor
        of a window before normalising it again, so the levels agree only to within that step.
        """
        return Audio(raise_floor(clip.samples, np.random.default_rng(0), floor_dbfs), clip.sample_rate_hz)

    def score_audio(self, audio: Audio) -> float:
        """Clip score of a prepared recording (windowed when longer than ``clip_window_s``)."""
        plan = self.windows
        if audio.duration_s <= plan.clip_window_s:
            return float(self.score_clips([audio])[0])
        windows = [window for _, window in audio.windows(plan.clip_window_s, plan.clip_window_s / 2)]
        return float(np.mean(self.score_clips(windows)))

    def timeline(self, audio: Audio) -> list[WindowScore]:
        plan = self.windows
        starts, windows = zip(*audio.windows(plan.timeline_window_s, plan.timeline_hop_s), strict=True)
        scores = self.score_clips(list(windows))
        return [
            WindowScore(start_s=round(start, 3), end_s=round(start + window.duration_s, 3), score=float(score))
            for start, window, score in zip(starts, windows, scores, strict=True)
        ]

    def detect(self, source: AudioFile | Audio, *, timeline: bool = False) -> DetectResponse:
        """Load ``source`` with :attr:`load_policy` and score it.

        Raises
        ------
        shared.audio.AudioError
            Unreadable, silent, too short or too long input.
        """
        audio = source if isinstance(source, Audio) else load_audio(source, self.load_policy)
        score = self.score_audio(audio)
        label: Literal["fake", "real"] = "fake" if score >= self.threshold else "real"
        watermark, reason = None, None
        if self.watermarker is not None:
            with self._blas.limit(limits=1, user_api="blas"):
                watermark = self.watermarker.detect(audio).to_result()
            if watermark.present and watermark.payload is not None:
                # The mark with its payload says "made by this deployment": fake whatever the
                # classifier says. (The payload is bound to the speech it was embedded in, so no copy
                # the bench tried carried it onto another recording: docs/watermark.md, "Copying".)
                label = "fake"
                reason = (
                    f"vcfad watermark found in {len(watermark.windows)} window(s) "
                    f"(confidence {watermark.confidence:.6f}, payload {watermark.payload})"
                )
            elif watermark.present:
                # The sync pattern alone can be copied onto any recording by someone who averages a
                # few clones (bench/watermark_averaging.py: 4 short clones sufficed; no copy carried
                # a readable payload), so it does not override the classifier.
                reason = (
                    f"vcfad watermark pattern found in {len(watermark.windows)} window(s) "
                    f"(confidence {watermark.confidence:.6f}) but its payload could not be read: a damaged "
                    "vcfad clone, or a mark copied onto this recording; the label is the classifier's"
                )
        return DetectResponse(
            score=score,
            label=label,
            threshold=self.threshold,
            model=self.name,
            duration_s=round(audio.duration_s, 3),
            timeline=self.timeline(audio) if timeline else None,
            watermark=watermark,
            reason=reason,
        )
