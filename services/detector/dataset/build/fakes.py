"""Fake clips of a build: loading each system's generator (through the generator registry) and
planning how many clips each system makes in each split."""

from __future__ import annotations

from collections import Counter

from tqdm import tqdm

from services.detector.dataset.build.items import (
    SPLITS,
    BuildError,
    Item,
    apportion,
    draw_duration,
    item_kind,
    item_rng,
)
from services.detector.dataset.config import FAMILIES, BuildConfig, System
from services.detector.dataset.generators import GeneratorUnavailableError
from services.detector.dataset.registry import build_generator


def load_generators(systems: list[System]) -> tuple[dict[str, object], dict[str, str]]:
    """Load every system's generator (through the registry); returns the generators and, for
    optional systems that could not load, why. A required system that cannot load is a BuildError."""
    generators: dict[str, object] = {}
    skipped: dict[str, str] = {}
    for system in tqdm(systems, desc="loading generators", unit="system"):
        try:
            generators[system.name] = build_generator(system)
        except GeneratorUnavailableError as error:
            if not system.optional:
                raise BuildError(f"system {system.name!r}: {error}") from None
            skipped[system.name] = str(error)
    return generators, skipped


def plan_fakes(config: BuildConfig, real_items: list[Item], systems: list[System], warnings: list[str]) -> list[Item]:
    """The fake clips of ``systems``: ``fakes_per_real`` per real clip of each split, shared
    among the split's systems by weight, each of a duration drawn like the real windows'."""
    real_count = Counter(item.split for item in real_items)
    items: list[Item] = []
    for split in SPLITS:
        here = [s for s in systems if s.split in (split, "by-speaker")]
        target = round(real_count.get(split, 0) * config.fakes_per_real)
        if not here or target == 0:
            if target:
                warnings.append(f"split {split}: no fake system available; it holds real clips only")
            continue
        for system, count in zip(here, apportion(target, [s.weight for s in here]), strict=True):
            for index in range(count):
                item_id = f"{system.name}/{split}/{index}"
                rng = item_rng(config.seed, "fake", item_id)
                items.append(
                    Item(
                        item_id=item_id,
                        relpath=f"audio/{split}/{system.name}/{index:05d}.wav",
                        split=split,
                        kind=item_kind(system),
                        system=system.name,
                        family=FAMILIES[system.kind],
                        duration_s=draw_duration(rng, config.windows),
                    )
                )
    return items
