"""What the benchmarks share: printing a JSON summary and, when asked, writing it to a file."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path


def emit_json(report: dict, output: Path | None) -> None:
    """Print ``report`` as indented JSON; also write it to ``output`` (folders made) when given."""
    text = json.dumps(report, indent=1)
    print(text)
    if output:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text + "\n", encoding="utf-8")


def run_context(load_avg_start: tuple[float, float, float]) -> dict:
    """Where and when a bench ran: its command line, the UTC time, the machine and its load
    (``load_avg_start`` read before the work, the end read now)."""
    return {
        "command": " ".join(sys.argv),
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "load_avg_start": load_avg_start,
            "load_avg_end": os.getloadavg(),
        },
    }
