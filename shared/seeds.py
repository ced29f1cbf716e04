"""Stable seeds: the same inputs give the same random draws on every machine and run."""

from __future__ import annotations

import hashlib


def stable_int(*parts: object) -> int:
    """A 64-bit integer from ``parts`` (joined as strings); unlike ``hash()``, the same in every process."""
    digest = hashlib.sha1("\x1f".join(map(str, parts)).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "little")
