"""Building the ONNX graph a ``whisper-probe`` model is served with, into the cache
(:func:`probe_onnx_path`), and int8 copies of a float model (:func:`quantized_copy`).

The service builds a missing graph through :func:`probe_onnx_path` on first use; once it is
cached, serving needs none of this (nor torch).
"""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
from pathlib import Path

from services.detector.model_files import ModelSpec, Precision, ProbeHead, probe_graph_path
from services.detector.training.export import build_probe_network, export_probe_onnx
from services.detector.training.int8 import INT8_TOLERANCE, quantize_matmuls
from shared.files import write_atomic
from shared.onnx_export import max_difference_to_torch


def probe_onnx_path(model_dir: Path) -> Path:
    """The assembled ONNX graph of a ``whisper-probe`` model (:func:`probe_graph_path`), built
    into the cache if missing: exported from torch and, for an int8 model, quantized and checked
    against its torch emulation."""
    spec = ModelSpec.read(model_dir)
    target = probe_graph_path(model_dir, "float32")
    if not target.exists():
        export_probe_onnx(model_dir, target)
    if spec.precision == "float32":
        return target
    quantized = probe_graph_path(model_dir)
    if not quantized.exists():

        def quantize_and_check(partial: Path) -> None:
            quantize_matmuls(target, partial, per_channel=spec.precision == "int8-matmul-channel")
            head = ProbeHead.load(Path(model_dir) / "head.npz")
            worst = max_difference_to_torch(build_probe_network(head, spec.whisper_model, spec.precision), partial)
            if worst > INT8_TOLERANCE:
                raise RuntimeError(f"int8 graph of {model_dir} differs from its torch emulation by {worst:.2e}")

        write_atomic(quantized, quantize_and_check)
    return quantized


def quantized_copy(
    model_dir: Path, out: Path, name: str | None = None, precision: Precision = "int8-matmul"
) -> ModelSpec:
    """Copy a float ``whisper-probe`` model folder to ``out`` at an int8 ``precision`` (weight
    scales per tensor, or per output channel with ``int8-matmul-channel``) and build its graph.
    The threshold is the float model's until it is set again on dev (``set-threshold``). ``out``
    appears only once complete.

    Raises
    ------
    ValueError
        The model is not a float ``whisper-probe`` model, ``out`` already exists, or
        ``precision`` is not an int8 one.
    """
    if precision == "float32":
        raise ValueError("quantized_copy makes an int8 copy; float32 is the source's precision")
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
    spec.precision = precision
    spec.training["quantized_from"] = {
        "model": source_name,
        "threshold": spec.threshold,
        "date": dt.date.today().isoformat(),
    }
    scales = {
        "int8-matmul": "one weight scale per tensor",
        "int8-matmul-channel": "one weight scale per output channel; the head's vector product stays float",
    }[precision]
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{out.name}.", dir=out.parent) as scratch:
        partial = Path(scratch) / out.name
        partial.mkdir()
        shutil.copy2(Path(model_dir) / "head.npz", partial / "head.npz")
        spec.write(partial)
        (partial / "MODEL_CARD.md").write_text(
            f"# Detector model `{spec.name}` (whisper-probe, int8 MatMuls)\n\n"
            f"`{source_name}` (its model card tells what it is and how it was trained) served with every\n"
            f"weight MatMul of its assembled ONNX graph dynamically quantized to int8 ({scales}; "
            "`vcfad quantize-detector`;\n`services/detector/training/int8.py: quantize_matmuls`). "
            "Scores move by a few hundredths, so the\nthreshold in `model.json` is this graph's own "
            "once `set-threshold` has run (`training.threshold_history`).\n"
        )
        probe_onnx_path(partial)
        partial.rename(out)
    return spec
