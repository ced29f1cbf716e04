"""A short tour of a running vcfad stack (``make up`` first; ``make demo`` does both).

1. detect a real recording and a synthetic one;
2. clone the voice of the real recording saying a sentence, following the job's progress;
3. detect the clone.

The gateway URL comes from ``VCFAD_GATEWAY_URL`` (default http://127.0.0.1:$VCFAD_GATEWAY_PORT)
and the API key from ``VCFAD_API_KEY``, else the first of ``VCFAD_API_KEYS``, else the key
``scripts/up.sh`` wrote to ``var/run/api_key``. Samples come from ``../shared/data``; without it,
Debian's ``flite`` speaks the samples. Exits non-zero when any step fails.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("VCFAD_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
OUT_DIR = REPO_ROOT / "var" / "demo"
TEXT = "Hello! This sentence was never spoken by this voice; it was cloned by vcfad."


class DemoError(RuntimeError):
    pass


def api_key() -> str:
    key = os.environ.get("VCFAD_API_KEY") or os.environ.get("VCFAD_API_KEYS", "").split(",")[0].strip()
    key_file = Path(os.environ.get("VCFAD_STATE_DIR", REPO_ROOT / "var")) / "run" / "api_key"
    if not key and key_file.exists():
        key = key_file.read_text().strip()
    if not key:
        raise DemoError("no API key: set VCFAD_API_KEY, or start the stack with `make up`")
    return key


def samples() -> tuple[Path, Path]:
    """(a real recording, a synthetic one)."""
    real = sorted((SHARED_DATA / "librispeech" / "test-other").rglob("*.flac"))
    fake_root = SHARED_DATA / "external-dev" / "speecht5-vctk"
    if real and (fake_root / "manifest.tsv").exists():
        with (fake_root / "manifest.tsv").open(newline="") as manifest:
            rows = sorted(csv.DictReader(manifest, delimiter="\t"), key=lambda row: row["path"])
        # A clip of a few seconds: the shortest ones are under a second of speech.
        fake = next((fake_root / row["path"] for row in rows if float(row["duration_s"]) >= 4.0), None)
        if fake is not None:
            return real[0], fake
    if not shutil.which("flite"):
        raise DemoError(f"no samples: {SHARED_DATA} is missing and Debian's flite is not installed")
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    spoken = OUT_DIR / "flite.wav"
    subprocess.run(
        [
            "flite",
            "-t",
            "The birch canoe slid on the smooth planks, glued to the dark blue background.",
            "-o",
            str(spoken),
        ],
        check=True,
    )
    print(f"(no {SHARED_DATA}: using flite speech as both samples)")
    return spoken, spoken


def detect(client: httpx.Client, name: str, data: bytes, what: str = "") -> dict:
    response = client.post("/detect", params={"timeline": "true"}, files={"file": (name, data)})
    if response.status_code != 200:
        raise DemoError(f"POST /detect {name}: HTTP {response.status_code}: {response.text}")
    verdict = response.json()
    windows = verdict["timeline"] or []
    peak = max((w["score"] for w in windows), default=verdict["score"])
    print(
        f"  {what}{name}: {verdict['label'].upper()} "
        f"(score {verdict['score']:.3f}, threshold {verdict['threshold']:.3f}, {verdict['duration_s']:.1f} s, "
        f"{len(windows)} windows, peak window {peak:.3f}; model {verdict['model']})"
    )
    return verdict


def clone(client: httpx.Client, reference: Path, text: str, timeout_s: float) -> bytes:
    started = time.monotonic()
    response = client.post(
        "/clone", files=[("reference", (reference.name, reference.read_bytes()))], data={"text": text}
    )
    if response.status_code != 202:
        raise DemoError(f"POST /clone: HTTP {response.status_code}: {response.text}")
    status_url = response.headers["location"]
    print(f"  job {response.json()['job_id']} accepted; polling {status_url}")
    last = None
    while time.monotonic() - started < timeout_s:
        job = client.get(status_url).json()
        line = f"{job['status']}: {job['stage']} {job['progress'] * 100:.0f}%"
        if line != last:
            print(f"  [{time.monotonic() - started:5.1f} s] {line}")
            last = line
        if job["status"] == "failed":
            raise DemoError(f"clone job failed: {job['error']}")
        if job["status"] == "succeeded":
            audio = client.get(job["audio_url"])
            if audio.status_code != 200:
                raise DemoError(f"GET {job['audio_url']}: HTTP {audio.status_code}: {audio.text}")
            return audio.content
        time.sleep(float(response.headers.get("retry-after", 1)) / 2)
    raise DemoError(f"the clone job did not finish in {timeout_s:.0f} s")


def main(argv: list[str] | None = None) -> int:
    port = os.environ.get("VCFAD_GATEWAY_PORT", "8000")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=os.environ.get("VCFAD_GATEWAY_URL", f"http://127.0.0.1:{port}"))
    parser.add_argument("--text", default=TEXT)
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds to wait for the clone")
    args = parser.parse_args(argv)
    try:
        key = api_key()
        real, fake = samples()
        with httpx.Client(base_url=args.url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as client:
            print(f"vcfad demo against {args.url} (web page: {args.url}/ , API docs: {args.url}/docs)")
            print("1. detect a real and a synthetic recording")
            detect(client, real.name, real.read_bytes(), "real (LibriSpeech) ")
            # external-dev: a synthesizer the detector never saw in training (a hard case).
            detect(client, fake.name, fake.read_bytes(), "synthetic (SpeechT5, unseen in training) ")
            print(f"2. clone the voice of {real.name}: {args.text!r}")
            wav = clone(client, real, args.text, args.timeout)
            OUT_DIR.mkdir(parents=True, exist_ok=True)
            out = OUT_DIR / "clone.wav"
            out.write_bytes(wav)
            print(f"  saved {out} ({len(wav) / 1024:.0f} KiB)")
            print("3. detect the clone")
            detect(client, out.name, wav, "the clone ")
    except (DemoError, httpx.HTTPError) as error:
        print(f"demo: error: {error}", file=sys.stderr)
        return 1
    print(f"demo: ok. Open {args.url}/ in a browser (API key: see var/run/api_key); stop with `make down`.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
