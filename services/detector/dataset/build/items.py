"""What a dataset build is made of: the planned clips (:class:`Item`), the real recordings they
come from, the sources a build draws fakes from, its results (:class:`BuildSummary`,
:class:`Verification`), a share of the work (:class:`Shard`), and the seeding every clip uses."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from services.detector.dataset.config import RealSource, Split, System, Windows
from services.detector.dataset.generators import COPY_KINDS, TEXT_KINDS, TextBank
from services.detector.dataset.readers import Recording
from shared.seeds import stable_int

SPLITS: tuple[Split, ...] = ("train", "dev", "test")
MANIFEST_COLUMNS = (
    "path", "label", "speaker", "system", "family", "split",
    "source", "augment", "duration_s", "sample_rate", "transcript",
)  # fmt: skip


class BuildError(ValueError):
    """A build that cannot go on (no real speech, a required engine missing ...)."""


def item_rng(seed: int, *parts: object) -> np.random.Generator:
    return np.random.default_rng([seed, stable_int(*parts)])


def draw_duration(rng: np.random.Generator, windows: Windows) -> float:
    """One window duration: the single distribution both classes share."""
    if windows.distribution == "uniform":
        return float(rng.uniform(windows.min_s, windows.max_s))
    return float(np.exp(rng.uniform(np.log(windows.min_s), np.log(windows.max_s))))


@dataclass
class RealRecording:
    """A recording windows are cut from: real speech, or (label ``spoof``) a machine-made
    recording of an external source, windowed the same way (items of kind ``recorded``)."""

    recording: Recording
    source: RealSource
    split: Split
    key: str  # the recording's path relative to data_root (or absolute), for the source column
    #: The fake family of a machine-made recording (``real`` for real speech).
    family: str = "real"
    #: From the external catalogue (short demo clips: at least one window each).
    external: bool = False

    @property
    def is_real(self) -> bool:
        return self.recording.label == "bonafide"


@dataclass
class Item:
    """One clip to make. ``kind`` is ``real``, ``recorded`` (a window of a machine-made recording),
    ``text``, ``copy`` or ``clone``."""

    item_id: str
    relpath: str
    split: Split
    kind: str
    system: str
    family: str
    recording: int | None = None  # index into the real recordings (real windows)
    start_s: float = 0.0
    duration_s: float = 0.0


@dataclass
class BuildSummary:
    output_dir: Path
    manifest: Path
    counts: dict[str, dict[str, int]]
    per_system: dict[str, int]
    skipped_systems: dict[str, str]
    failed_items: int
    reused_items: int
    wall_s: float
    probe: dict | None = None
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Verification:
    """What :meth:`DatasetBuilder.verify` found: per system, ``(clip path, status)`` for each clip
    remade, status ``identical``, ``differs`` or ``stale`` (made under other settings than the
    config's now: a rebuild remakes it)."""

    threads: int  # the compute threads the clips were remade with
    threads_recorded: bool  # False: the build did not record its count (the current one was used)
    checks: dict[str, list[tuple[str, str]]]

    @property
    def problems(self) -> list[str]:
        """One line per clip that is not identical, and per system with no built clip."""
        lines = [
            f"{status}: {path}" for checks in self.checks.values() for path, status in checks if status != "identical"
        ]
        return lines + [f"none built: {system}" for system, checks in self.checks.items() if not checks]


@dataclass(frozen=True)
class Sources:
    """What a build draws clips from: the real recordings (and their indices per split), the
    loaded fake generators and the text bank."""

    recordings: list[RealRecording]
    #: Per split, the real recordings' indices and the chance of drawing each (None: all alike;
    #: else its share of the split's real speech, in seconds: ``fake_sources_by``).
    by_split: dict[str, tuple[list[int], np.ndarray | None]]
    generators: dict[str, object]
    bank: TextBank


def clean(value: object) -> str:
    return " ".join(str(value).replace("\t", " ").split())


def window_cache_path(output_dir: Path) -> Path:
    """Where the build in ``output_dir`` keeps its fake windows (before channel and augmentation)."""
    return Path(output_dir) / "cache" / "windows"


#: Item kinds cut from a recording (no generator runs): they share the ``bonafide`` fingerprint.
WINDOW_KINDS = ("real", "recorded")


def by_system(items: list[Item]) -> dict[str, list[Item]]:
    groups: dict[str, list[Item]] = defaultdict(list)
    for item in items:
        groups[item.system].append(item)
    return dict(groups)


def mean_duration(windows: Windows) -> float:
    if windows.distribution == "uniform":
        return (windows.min_s + windows.max_s) / 2
    return (windows.max_s - windows.min_s) / float(np.log(windows.max_s / windows.min_s))


def item_kind(system: System) -> str:
    if system.kind in TEXT_KINDS:
        return "text"
    return "copy" if system.kind in COPY_KINDS else "clone"


def write_json(path: Path, data: object, indent: int | None = None) -> None:
    path.write_text(json.dumps(data, indent=indent) + "\n", encoding="utf-8")


def apportion(total: int, weights: list[float]) -> list[int]:
    """Split ``total`` in proportion to ``weights`` (largest remainders; sums exactly to total)."""
    shares = np.array(weights, dtype=float) / sum(weights) * total
    counts = np.floor(shares).astype(int)
    for index in np.argsort(-(shares - counts))[: total - int(counts.sum())]:
        counts[index] += 1
    return [int(c) for c in counts]


@dataclass(frozen=True)
class Shard:
    """Share ``index`` of ``count`` (0-based) of a build's clips, chosen by clip id, so parallel
    processes split the work without talking to each other and the clips stay the same."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise BuildError(f"--shard {self.index + 1}/{self.count}: K/N needs N ≥ 1 and 1 ≤ K ≤ N")

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``"K/N"`` (1-based K, as a user writes it) → ``Shard(K - 1, N)``."""
        try:
            number, count = (int(part) for part in text.split("/"))
        except ValueError:
            raise BuildError(f"--shard {text!r}: expected K/N, e.g. 1/2") from None
        return cls(number - 1, count)

    def holds(self, item_id: str) -> bool:
        return stable_int("shard", item_id) % self.count == self.index

    @property
    def suffix(self) -> str:
        return f" [{self.index + 1}/{self.count}]"
