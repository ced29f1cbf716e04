"""Reading labelled audio manifests (the TSV format of ``../shared/data`` and of `vcfad data build`).

Required columns: ``path`` (relative to the manifest's folder, or absolute) and ``label``
(``bonafide`` or ``spoof``). Optional: ``speaker``, ``system``, ``family``, ``split``,
``duration_s``, ``transcript`` and anything else (kept in ``extra``).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from shared.audio import READABLE_SUFFIXES, audio_files

Label = Literal["bonafide", "spoof"]
LABELS: tuple[Label, ...] = ("bonafide", "spoof")


class ManifestError(ValueError):
    """A manifest that cannot be used; the message names the file, line and column."""


@dataclass(frozen=True, slots=True)
class ManifestRow:
    path: Path
    label: Label
    speaker: str = ""
    system: str = ""
    family: str = ""
    split: str = ""
    duration_s: float | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def is_fake(self) -> bool:
        return self.label == "spoof"


def read_manifest(path: str | Path) -> list[ManifestRow]:
    """Rows of a manifest TSV, with paths resolved against the manifest's folder."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"{path}: no such manifest file")
    with path.open(newline="", encoding="utf-8") as stream:
        reader = csv.DictReader(stream, delimiter="\t", quoting=csv.QUOTE_NONE)
        missing = {"path", "label"} - set(reader.fieldnames or ())
        if missing:
            raise ManifestError(f"{path}: missing column(s) {sorted(missing)}; found {reader.fieldnames}")
        rows = []
        for line_number, record in enumerate(reader, start=2):
            label = (record.get("label") or "").strip()
            if label not in LABELS:
                raise ManifestError(f"{path}:{line_number}: label must be 'bonafide' or 'spoof', got {label!r}")
            audio_path = Path(record["path"])
            duration = record.get("duration_s") or ""
            known = {"path", "label", "speaker", "system", "family", "split", "duration_s"}
            rows.append(
                ManifestRow(
                    path=audio_path if audio_path.is_absolute() else path.parent / audio_path,
                    label=label,  # type: ignore[arg-type]  # checked against LABELS above
                    speaker=record.get("speaker") or "",
                    system=record.get("system") or label,
                    family=record.get("family") or "",
                    split=record.get("split") or "",
                    duration_s=float(duration) if duration else None,
                    extra={key: value for key, value in record.items() if key not in known and key},
                )
            )
    if not rows:
        raise ManifestError(f"{path}: the manifest has no rows")
    return rows


def folder_rows(root: str | Path) -> list[ManifestRow]:
    """Every audio file under the folder ``root`` as a real (bonafide) row: a deployment's own
    genuine recordings, to bound or measure its false alarms on. Speaker and system are the
    folder's name; the rows have no split."""
    root = Path(root)
    if not root.is_dir():
        raise ManifestError(f"{root}: no such folder of real recordings")
    files = audio_files(root)
    if not files:
        suffixes = ", ".join(sorted(READABLE_SUFFIXES))
        raise ManifestError(f"{root}: no audio files ({suffixes}) under the folder")
    return [ManifestRow(path=path, label="bonafide", speaker=root.name, system=root.name) for path in files]


def select(rows: Iterable[ManifestRow], split: str) -> list[ManifestRow]:
    return [row for row in rows if row.split == split]
