"""`POST /detect` latency through the gateway for a 5 s clip, at concurrency 1 and 8.

Needs a running stack (``make up``)::

    .venv/bin/python bench/gateway_latency.py                 # 200 requests per level
    .venv/bin/python bench/gateway_latency.py --requests 400 --concurrency 1 8 16 --json out.json

The clip is the first 5.0 s of a real LibriSpeech utterance from ``../shared/data`` (WAV, 16 kHz).
Each level starts with warm-up requests that are not counted. Latency is measured at the client
(request sent → whole JSON answer read), so it includes HTTP, multipart parsing in the gateway and
the detector, decoding, resampling and ONNX inference. With ``--detector-url`` the same load also
goes straight to the detector service, which shows what the gateway hop costs.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import soundfile as sf

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("VCFAD_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
CLIP_S = 5.0


def five_second_clip() -> tuple[bytes, str]:
    for clip in sorted((SHARED_DATA / "librispeech" / "test-other").rglob("*.flac")):
        samples, rate_hz = sf.read(clip, dtype="float32")
        if len(samples) >= CLIP_S * rate_hz:
            buffer = io.BytesIO()
            sf.write(buffer, samples[: int(CLIP_S * rate_hz)], rate_hz, format="WAV", subtype="PCM_16")
            return buffer.getvalue(), f"{clip.name} (first {CLIP_S:g} s, {rate_hz} Hz WAV)"
    sys.exit(f"bench: no LibriSpeech clip of {CLIP_S:g} s under {SHARED_DATA}")


def api_key(explicit: str | None) -> str:
    key = explicit or os.environ.get("VCFAD_API_KEY") or os.environ.get("VCFAD_API_KEYS", "").split(",")[0].strip()
    key_file = REPO_ROOT / "var" / "run" / "api_key"
    if not key and key_file.exists():
        key = key_file.read_text().strip()
    if not key:
        sys.exit("bench: no API key (set VCFAD_API_KEY or start the stack with `make up`)")
    return key


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


async def run_level(url: str, headers: dict, clip: bytes, concurrency: int, requests: int, warmup: int) -> dict:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=120, limits=limits) as client:

        async def one() -> float:
            started = time.perf_counter()
            response = await client.post("/detect", files={"file": ("clip.wav", clip, "audio/wav")})
            response.json()
            elapsed = time.perf_counter() - started
            if response.status_code != 200:
                raise RuntimeError(f"HTTP {response.status_code}: {response.text[:200]}")
            return elapsed

        async def worker(count: int, out: list[float]) -> None:
            for _ in range(count):
                out.append(await one())

        warm: list[float] = []
        await asyncio.gather(*(worker(max(1, warmup // concurrency), warm) for _ in range(concurrency)))
        latencies: list[float] = []
        per_worker = [requests // concurrency + (1 if i < requests % concurrency else 0) for i in range(concurrency)]
        started = time.perf_counter()
        await asyncio.gather(*(worker(count, latencies) for count in per_worker))
        wall_s = time.perf_counter() - started
    ms = [value * 1000 for value in latencies]
    return {
        "concurrency": concurrency,
        "requests": len(ms),
        "p50_ms": round(percentile(ms, 50), 1),
        "p90_ms": round(percentile(ms, 90), 1),
        "p99_ms": round(percentile(ms, 99), 1),
        "mean_ms": round(statistics.fmean(ms), 1),
        "max_ms": round(max(ms), 1),
        "throughput_rps": round(len(ms) / wall_s, 2),
    }


async def main_async(args: argparse.Namespace) -> dict:
    clip, clip_name = five_second_clip()
    headers = {"Authorization": f"Bearer {api_key(args.api_key)}"}
    targets = [("gateway", args.url, headers)]
    if args.detector_url:
        targets.append(("detector (direct)", args.detector_url, {}))
    readiness = httpx.get(f"{args.url}/readyz", timeout=10).json()
    results = []
    for name, url, target_headers in targets:
        for concurrency in args.concurrency:
            level = await run_level(url, target_headers, clip, concurrency, args.requests, args.warmup)
            level["target"] = name
            results.append(level)
            print(
                f"{name:18s} c={concurrency:<3d} n={level['requests']:<4d} p50 {level['p50_ms']:7.1f} ms  "
                f"p99 {level['p99_ms']:7.1f} ms  mean {level['mean_ms']:7.1f} ms  {level['throughput_rps']:6.2f} req/s",
                flush=True,
            )
    return {
        "clip": clip_name,
        "clip_bytes": len(clip),
        "url": args.url,
        "readyz": readiness,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "results": results,
    }


def main(argv: list[str] | None = None) -> int:
    port = os.environ.get("VCFAD_GATEWAY_PORT", "8000")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=os.environ.get("VCFAD_GATEWAY_URL", f"http://127.0.0.1:{port}"))
    parser.add_argument("--api-key", default=None)
    parser.add_argument("--detector-url", default=None, help="also measure the detector service directly")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--requests", type=int, default=200, help="counted requests per level")
    parser.add_argument("--warmup", type=int, default=16)
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args(argv)
    report = asyncio.run(main_async(args))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
