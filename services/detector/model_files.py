"""A detector model folder on disk, read without torch (the service reads models through it).

``models/detector/<name>/`` holds ``model.json`` (:class:`ModelSpec`: kind, threshold, training
summary), ``MODEL_CARD.md`` and the trained parameters:

* ``seed-baseline``: ``model.onnx`` — StandardScaler + SVM over the 193 reference features.
* ``whisper-probe``: ``head.npz`` (:class:`ProbeHead`). Its ONNX graph (log-mel → Whisper encoder
  blocks → pooled statistics → head) is assembled once into the cache, at :func:`probe_graph_path`,
  by :mod:`services.detector.training.graphs` (torch).
* ``whisper-frames``: ``head.npz`` holds the weights of a network over the encoder's frames
  (:mod:`services.detector.training.frames`); its graph is assembled and cached the same way.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np

from shared.offline_models import cache_dir, whisper_model_dir

ModelKind = Literal["seed-baseline", "whisper-probe", "whisper-frames"]
#: Kinds served through a graph assembled from ``head.npz`` and the packaged Whisper weights.
GRAPH_KINDS: tuple[ModelKind, ...] = ("whisper-probe", "whisper-frames")
#: ``int8-matmul``: the assembled graph's MatMuls quantized dynamically, one weight scale per
#: tensor; ``int8-matmul-channel``: one weight scale per output channel
#: (:func:`services.detector.training.int8.quantize_matmuls`).
Precision = Literal["float32", "int8-matmul", "int8-matmul-channel"]
PRECISIONS: tuple[Precision, ...] = ("float32", "int8-matmul", "int8-matmul-channel")
#: How a block's hidden states (time, width) become one vector: ``mean-std`` (2·width) or
#: ``mean-std-delta`` (3·width: also the RMS of each dimension's frame-to-frame difference;
#: :func:`services.detector.training.features.pool_statistics`).
Pooling = Literal["mean-std", "mean-std-delta"]
POOLINGS: tuple[Pooling, ...] = ("mean-std", "mean-std-delta")
#: Noise floors a model may ask its input to be raised to (dBFS): below, inaudible; above, it
#: would bury quiet speech.
INPUT_FLOOR_RANGE_DBFS = (-90.0, -30.0)
REPO_ROOT = Path(__file__).resolve().parents[2]
#: The model folders shipped with vcfad.
MODELS_DIR = REPO_ROOT / "models" / "detector"


def default_model_dir(name: str = "default") -> Path:
    """A shipped model folder, by name (``default`` or ``seed-baseline``)."""
    return MODELS_DIR / name


class ModelFileError(ValueError):
    """A model folder whose files cannot be used (bad values in ``model.json`` or ``head.npz``);
    the message names the file. The command line reports it in one line."""


def check_pooling(pooling: str) -> Pooling:
    """``pooling`` if it is one of :data:`POOLINGS`; ValueError naming the choices otherwise."""
    if pooling not in POOLINGS:
        raise ValueError(f"pooling {pooling!r} is not one of {POOLINGS}")
    return pooling


def check_input_floor(floor_dbfs: float | None) -> float | None:
    """``floor_dbfs`` if None or inside :data:`INPUT_FLOOR_RANGE_DBFS`; ValueError otherwise."""
    low, high = INPUT_FLOOR_RANGE_DBFS
    if floor_dbfs is not None and not low <= floor_dbfs <= high:
        raise ValueError(f"input_floor_dbfs {floor_dbfs:g} is outside {low:g}…{high:g} dBFS")
    return floor_dbfs


#: Bump when :func:`~services.detector.training.int8.quantize_matmuls` changes, so that cached int8
#: graphs are made again.
QUANTIZE_RECIPE_VERSION = 1


@dataclass
class ModelSpec:
    """Contents of ``model.json``."""

    name: str
    kind: ModelKind
    threshold: float
    created: str
    whisper_model: str = "base"
    layers: list[int] = field(default_factory=list)
    training: dict[str, Any] = field(default_factory=dict)
    precision: Precision = "float32"
    #: Raise each clip's noise floor to this level (dBFS) before scoring, as training's
    #: augmentation raised every training clip's (:meth:`Detector.score_clips`); None: as given.
    input_floor_dbfs: float | None = None

    @classmethod
    def read(cls, model_dir: Path) -> ModelSpec:
        path = Path(model_dir) / "model.json"
        if not path.is_file():
            raise FileNotFoundError(f"{model_dir}: not a detector model folder (no model.json)")
        try:
            spec = cls(**json.loads(path.read_text()))
        except (json.JSONDecodeError, TypeError) as error:  # not JSON, or unknown/missing fields
            raise ModelFileError(f"{path}: not a model description ({error})") from None
        if spec.precision not in PRECISIONS or (spec.precision != "float32" and spec.kind != "whisper-probe"):
            raise ModelFileError(f"{path}: precision {spec.precision!r} is not one of {PRECISIONS} for a {spec.kind}")
        try:
            check_input_floor(spec.input_floor_dbfs)
        except ValueError as error:
            raise ModelFileError(f"{path}: {error}") from None
        return spec

    def write(self, model_dir: Path) -> None:
        Path(model_dir).mkdir(parents=True, exist_ok=True)
        (Path(model_dir) / "model.json").write_text(json.dumps(asdict(self), indent=2) + "\n")


def copy_model(model_dir: Path, out: Path) -> ModelSpec:
    """Copy a model folder to ``out`` (which must not exist) to change its settings there, not in
    the shipped files; the copy's ``model.json`` says where it came from. The model card stays
    behind: its figures are the source's, at the source's threshold."""
    out = Path(out)
    if out.exists():
        raise ModelFileError(f"{out}: already exists; give a new folder for the copy")
    spec = ModelSpec.read(model_dir)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        # Assembled beside the target and renamed into place, so a failed copy leaves no half folder.
        with tempfile.TemporaryDirectory(prefix=f".{out.name}.", dir=out.parent) as scratch:
            partial = Path(scratch) / out.name
            shutil.copytree(model_dir, partial, ignore=shutil.ignore_patterns("MODEL_CARD.md"))
            spec.training["copied_from"] = {"model": spec.name, "folder": str(model_dir), "threshold": spec.threshold}
            spec.write(partial)
            partial.rename(out)
    except OSError as error:  # an unwritable or full disk: the user's to fix, said plainly
        raise ModelFileError(f"{out}: cannot write the copy there ({error.strerror or error})") from None
    return spec


@contextmanager
def removed_on_failure(folder: Path) -> Iterator[Path]:
    """Remove ``folder`` (a model copy the running command has just made) if the block fails, so a
    copy without the settings it was made for is not left behind."""
    try:
        yield folder
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


@dataclass(frozen=True)
class ProbeHead:
    """Standardised logistic regression over pooled Whisper layers (``head.npz``)."""

    #: Hidden states read: 0 = the encoder's front end, i = block i (:class:`WhisperEncoder`).
    layers: tuple[int, ...]
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    #: Per-band log-mel profile when the input is channel-normalised
    #: (:func:`services.detector.training.features.normalise_channel`); None = the raw log-mel.
    mel_profile: np.ndarray | None = None
    #: Statistics per block; heads saved before it existed are ``mean-std``.
    pooling: Pooling = "mean-std"

    def __post_init__(self) -> None:
        check_pooling(self.pooling)
        if not self.layers or min(self.layers) < 0 or len(set(self.layers)) != len(self.layers):
            raise ValueError(f"layers must be distinct hidden-state numbers ≥ 0, got {list(self.layers)}")

    def save(self, path: Path) -> None:
        optional: dict[str, Any] = {} if self.mel_profile is None else {"mel_profile": self.mel_profile}
        if self.pooling != "mean-std":  # so that heads without it keep their bytes (and graph cache)
            optional["pooling"] = np.array(self.pooling)
        np.savez(
            path,
            layers=np.array(self.layers),
            mean=self.mean,
            scale=self.scale,
            coef=self.coef,
            intercept=np.array([self.intercept]),
            **optional,
        )

    @classmethod
    def load(cls, path: Path) -> ProbeHead:
        with np.load(path) as data:
            try:
                return cls(
                    layers=tuple(int(x) for x in data["layers"]),
                    mean=data["mean"].astype(np.float32),
                    scale=data["scale"].astype(np.float32),
                    coef=data["coef"].astype(np.float32),
                    intercept=float(data["intercept"][0]),
                    mel_profile=data["mel_profile"].astype(np.float32) if "mel_profile" in data.files else None,
                    pooling=cast(Pooling, str(data["pooling"])) if "pooling" in data.files else "mean-std",
                )
            except ValueError as error:
                raise ModelFileError(f"{path}: {error}") from None

    def logit(self, pooled: np.ndarray) -> np.ndarray:
        """pooled: (batch, layers_total, k·width) from WhisperLayerFeatures (with this head's
        ``mel_profile`` and ``pooling``) -> log-odds of fake per row."""
        features = pooled[:, list(self.layers), :].reshape(len(pooled), -1)
        return ((features - self.mean) / self.scale) @ self.coef + self.intercept

    def probability(self, pooled: np.ndarray) -> np.ndarray:
        """P(fake) per row of ``pooled`` (see :meth:`logit`)."""
        return 1.0 / (1.0 + np.exp(-self.logit(pooled)))


def probe_graph_path(model_dir: Path, precision: Precision | None = None) -> Path:
    """Where the assembled ONNX graph of a ``whisper-probe`` or ``whisper-frames`` model is cached, at the model's own
    precision or at ``precision`` (``float32``: the graph an int8 one is quantized from). It may
    not exist yet: :func:`services.detector.training.graphs.probe_onnx_path` builds it."""
    spec = ModelSpec.read(model_dir)
    digest = hashlib.sha256((Path(model_dir) / "head.npz").read_bytes())
    digest.update(str((whisper_model_dir(spec.whisper_model) / "model.bin").stat().st_size).encode())
    # Keyed by what the graph is made of (not the model's name), so a renamed copy reuses it.
    target = cache_dir() / "detector" / f"{spec.kind}-{digest.hexdigest()[:16]}.onnx"
    precision = precision or spec.precision
    if precision == "float32":
        return target
    # Here, not at the top: `vcfad --help` reads this module and must not load ONNX Runtime.
    import onnxruntime

    # The recipe and the runtime that quantized it are in the name: a change makes a new graph.
    recipe = f"{precision}-r{QUANTIZE_RECIPE_VERSION}-ort{onnxruntime.__version__}"
    return target.with_name(f"{target.stem}-{recipe}.onnx")
