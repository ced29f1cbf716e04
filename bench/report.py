"""What the benchmarks share: printing a JSON summary and, when asked, writing it to a file."""

from __future__ import annotations

import json
from pathlib import Path


def emit_json(report: dict, output: Path | None) -> None:
    """Print ``report`` as indented JSON; also write it to ``output`` (folders made) when given."""
    text = json.dumps(report, indent=1)
    print(text)
    if output:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text + "\n", encoding="utf-8")
