"""Checking a built dataset: remaking some of its clips from their seeds alone and comparing
them with the files (`vcfad data verify`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from services.detector.dataset.build.items import WINDOW_KINDS, Item, Sources, by_system
from services.detector.dataset.build.make import ClipMaker
from shared.audio import decode_audio


def remake_and_compare(
    output_dir: Path,
    planned: list[Item],
    sources: Sources,
    fingerprints: dict[str, str],
    maker: ClipMaker,
    per_system: int,
) -> dict[str, list[tuple[str, str]]]:
    """Per system, ``(clip path, status)`` of up to ``per_system`` built clips of ``planned``
    (evenly spaced through the plan), each made again from scratch (no window cache) and compared
    with its file: ``identical`` (within two steps of 16-bit resolution), ``differs`` or ``stale``
    (its sidecar's fingerprint is not the config's now)."""
    result: dict[str, list[tuple[str, str]]] = {}
    for system, items in by_system(planned).items():
        built = [item for item in items if (output_dir / item.relpath).exists()]
        count = min(per_system, len(built))
        spots = sorted({round(i * (len(built) - 1) / max(count - 1, 1)) for i in range(count)})
        checks = []
        for item in (built[spot] for spot in spots):
            wav_path = output_dir / item.relpath
            try:
                sidecar = json.loads(wav_path.with_suffix(".json").read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError):
                sidecar = {}
            if sidecar.get("fingerprint") != fingerprints["bonafide" if item.kind in WINDOW_KINDS else item.system]:
                checks.append((item.relpath, "stale"))
                continue
            on_disk = decode_audio(wav_path).samples
            made = maker.make_row(item, sources, cached=False)
            same = made is not None and made[0].samples.shape == on_disk.shape
            same = bool(same and np.max(np.abs(made[0].samples - on_disk)) <= 2 / 32768)
            checks.append((item.relpath, "identical" if same else "differs"))
        result[system] = checks
    return result
