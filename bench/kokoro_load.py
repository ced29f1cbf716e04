"""Kokoro's load cost: seconds to a ready engine and its resident memory, each in a fresh process.

    .venv/bin/python bench/kokoro_load.py --repeats 3 --output docs/kokoro-load.json

Two rows: an ONNX Runtime session opened on the fast graph's file as it is built (no pitch
input: what an engine cost before the pitch fit), and a :class:`shared.tts.kokoro.KokoroTTS`
engine as the cloner builds it (the cached copy with the pitch input, plus the phonemizer and
style packs). Both graphs must be in the cache first (``vcfad models build-kokoro-graph``, an
install step), so neither row pays for building them.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# The repo root is on the path only from here.
from bench.report import emit_json, run_context

_CHILD = """
import json, sys, time
sys.path.insert(0, {root!r})
started = time.perf_counter()
if {mode!r} == "session":
    import onnxruntime
    from shared.tts.kokoro import fast_kokoro_model_path
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 2
    onnxruntime.InferenceSession(str(fast_kokoro_model_path()), options, providers=["CPUExecutionProvider"])
else:
    from shared.tts.kokoro import KokoroTTS
    KokoroTTS(threads=2)
seconds = time.perf_counter() - started
status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
print(json.dumps({{"load_s": seconds, "rss_mb": int(status["VmRSS"].split()[0]) / 1024,
                   "peak_rss_mb": int(status["VmHWM"].split()[0]) / 1024}}))
"""
ROWS = {
    "session": "ONNX Runtime session on the fast graph's file (no pitch input)",
    "engine": "KokoroTTS engine (the cached copy with the pitch input)",
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="fresh processes per row")
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error("--repeats ≥ 1")
    load_avg_start = os.getloadavg()
    root = str(Path(__file__).resolve().parents[1])
    rows = []
    for mode, name in ROWS.items():
        runs = []
        for _ in range(args.repeats):
            child = subprocess.run(
                [sys.executable, "-c", _CHILD.format(root=root, mode=mode)],
                capture_output=True,
                text=True,
                check=False,
            )
            if child.returncode != 0:
                print(f"kokoro_load: the {mode} row failed:\n{child.stderr.strip()[-2000:]}", file=sys.stderr)
                return 1
            runs.append(json.loads(child.stdout.strip().splitlines()[-1]))
        rows.append(
            {
                "row": name,
                "runs": len(runs),
                **{key: round(float(np.median([run[key] for run in runs])), 2) for key in runs[0]},
            }
        )
    emit_json({"rows": rows, **run_context(load_avg_start)}, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
