"""Exploration: an int8 model's graph with one weight scale per output channel, served from a separate cache.

    .venv/bin/python bench/int8_per_channel.py --model runs/studio-int8 --cache-dir var/int8-per-channel
    VCFAD_CACHE_DIR=var/int8-per-channel .venv/bin/vcfad eval-detector --manifest ... --split dev \\
        --model runs/studio-int8 --out DIR
    VCFAD_CACHE_DIR=var/int8-per-channel .venv/bin/python bench/detector_speed.py --models default runs/studio-int8

``vcfad quantize-detector`` quantizes every weight MatMul with one scale per tensor
(``services/detector/training/int8.py``). This writes the same model's graph quantized with one
scale per output channel (``quantize_matmuls(..., per_channel=True)``, 7-bit weights as there)
into ``--cache-dir``, under the name the model's int8 graph has in the cache,
so that every vcfad command run with ``VCFAD_CACHE_DIR`` set to that folder serves it in place of
the per-tensor graph. A MatMul whose weight is a vector (the head's product with its logistic
coefficients) stays float: ONNX Runtime's dynamic MatMul refuses a per-channel zero point there.

Not a shipped recipe (no torch emulation, no parity check): it measures what the recipe would
give (docs/detector.md, "Gated real speech and studio voices", the int8 exploration).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# The repo root is on the path only from here.
from services.detector.model_files import ModelFileError, ModelSpec, probe_graph_path
from services.detector.training.export import export_probe_onnx
from services.detector.training.int8 import quantize_matmuls


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, type=Path, help="an int8 whisper-probe model folder")
    parser.add_argument("--cache-dir", required=True, type=Path, help="a cache folder of its own, for VCFAD_CACHE_DIR")
    args = parser.parse_args()
    try:
        spec = ModelSpec.read(args.model)
    except (FileNotFoundError, ModelFileError) as error:
        parser.error(str(error))
    if spec.kind != "whisper-probe" or spec.precision != "int8-matmul":
        found = f"{spec.kind} {spec.precision}"
        parser.error(f"--model {args.model}: needs a whisper-probe model with int8 MatMuls, not {found}")
    # cache_dir() reads the variable on each call: from here on every graph path is in that folder.
    os.environ["VCFAD_CACHE_DIR"] = str(args.cache_dir.resolve())
    float_graph = probe_graph_path(args.model, "float32")
    if not float_graph.exists():
        export_probe_onnx(args.model, float_graph)
    target = probe_graph_path(args.model)
    quantize_matmuls(float_graph, target, per_channel=True)
    print(f"{target}: per-channel int8 MatMuls")
    print(f"serve it with VCFAD_CACHE_DIR={args.cache_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
