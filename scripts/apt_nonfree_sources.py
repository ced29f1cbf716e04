"""Print a one-line apt source list that adds contrib and non-free to the machine's own Debian sources.

scripts/install.sh points a private apt run at this list to install the optional contrib/non-free
TTS engines, so it uses the mirror and suites this machine already trusts instead of a mirror
written into the script. Reads /etc/apt/sources.list, /etc/apt/sources.list.d/*.list (one-line
format) and /etc/apt/sources.list.d/*.sources (deb822); keeps the ``deb`` entries that carry the
``main`` component and prints each with ``main contrib non-free``. Exit code 1 when none is found.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

APT_DIR = Path("/etc/apt")


def _one_line_entries(text: str) -> Iterator[tuple[str, str, str, list[str]]]:
    """(options, uri, suite, components) of each ``deb`` line."""
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line.startswith("deb "):
            continue
        rest = line[4:].strip()
        options = ""
        if rest.startswith("["):
            options, rest = rest[1:].split("]", 1)
        fields = rest.split()
        if len(fields) >= 3:
            yield options.strip(), fields[0], fields[1], fields[2:]


def _deb822_entries(text: str) -> Iterator[tuple[str, str, str, list[str]]]:
    for stanza in text.split("\n\n"):
        fields: dict[str, str] = {}
        for raw in stanza.splitlines():
            if raw.startswith("#") or ":" not in raw:
                continue
            key, value = raw.split(":", 1)
            fields[key.strip().lower()] = value.strip()
        if "deb" not in fields.get("types", "").split() or fields.get("enabled", "yes").lower() == "no":
            continue
        signed_by = fields.get("signed-by", "")
        # An inline key block cannot be carried into a one-line entry; a key file path can.
        options = f"signed-by={signed_by}" if signed_by.startswith("/") else ""
        for uri in fields.get("uris", "").split():
            for suite in fields.get("suites", "").split():
                yield options, uri, suite, fields.get("components", "").split()


def nonfree_source_lines(apt_dir: Path = APT_DIR) -> list[str]:
    """One ``deb`` line per (uri, suite) of the machine's sources that has ``main``."""
    entries: list[tuple[str, str, str, list[str]]] = []
    files = [apt_dir / "sources.list", *sorted((apt_dir / "sources.list.d").glob("*.list"))]
    for path in files:
        if path.is_file():
            entries.extend(_one_line_entries(path.read_text(encoding="utf-8", errors="replace")))
    for path in sorted((apt_dir / "sources.list.d").glob("*.sources")):
        entries.extend(_deb822_entries(path.read_text(encoding="utf-8", errors="replace")))
    lines: list[str] = []
    for options, uri, suite, components in entries:
        if "main" not in components:
            continue
        line = f"deb {f'[{options}] ' if options else ''}{uri} {suite} main contrib non-free"
        if line not in lines:
            lines.append(line)
    return lines


def main() -> int:
    lines = nonfree_source_lines(Path(sys.argv[1]) if len(sys.argv) > 1 else APT_DIR)
    if not lines:
        print("apt_nonfree_sources: no Debian source with 'main' found under /etc/apt", file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
