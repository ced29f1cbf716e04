"""``vcfad models download sv2tts``: fetch RTVC's checkpoints from Hugging Face (needs network)."""

from __future__ import annotations

import sys
import urllib.request
from functools import partial
from pathlib import Path

from services.cloner.sv2tts.backend import CHECKPOINTS, default_checkpoint_dir
from shared.files import write_atomic
from vcfad.cli_common import CLIError

BASE_URL = "https://huggingface.co/CorentinJ/SV2TTS/resolve/main/"
#: Smallest plausible sizes (the files are ~17 MB, ~371 MB and ~54 MB): catches HTML error pages.
MIN_BYTES = {"encoder.pt": 10_000_000, "synthesizer.pt": 300_000_000, "vocoder.pt": 40_000_000}


def _download(path: Path, url: str, min_bytes: int) -> None:
    """Write the file at ``url`` to ``path``, with progress on stderr; a CLI error if it fails or is too small."""
    try:
        with urllib.request.urlopen(url, timeout=60) as response, path.open("wb") as out:
            total = int(response.headers.get("Content-Length") or 0)
            done = 0
            while chunk := response.read(1 << 20):
                out.write(chunk)
                done += len(chunk)
                if total:
                    print(f"\r{url.rsplit('/', 1)[-1]}: {done / total:5.1%}", end="", file=sys.stderr)
            print(file=sys.stderr)
    except OSError as error:
        raise CLIError(f"could not download {url}: {error}") from None
    if path.stat().st_size < min_bytes:
        raise CLIError(f"{url}: the download is too small to be the checkpoint")


def download_sv2tts(dest: Path | None = None, base_url: str = BASE_URL) -> list[Path]:
    """Download encoder.pt, synthesizer.pt and vocoder.pt into ``dest`` (skips complete files)."""
    dest = Path(dest) if dest else default_checkpoint_dir()
    dest.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in CHECKPOINTS:
        target = dest / name
        if target.exists() and target.stat().st_size >= MIN_BYTES[name]:
            paths.append(target)
            continue
        write_atomic(target, partial(_download, url=base_url + name, min_bytes=MIN_BYTES[name]))
        paths.append(target)
    return paths
