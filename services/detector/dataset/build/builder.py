"""The dataset builder: plans a build's clips, makes the missing ones (in shards when parallel),
writes the manifest and ``build_info.json``, and verifies a built dataset.

Every clip, real or fake, goes through the same steps:

1. its raw audio goes through :func:`shared.audio.load_audio` with the serving :class:`LoadPolicy`
   (16 kHz mono, silence trimmed, loudness normalised);
2. a window of a duration drawn from ONE distribution (``[windows]``) is cropped from it;
3. the channel augmentation (``[augment]``, one distribution for both classes) is applied;
4. the load policy is applied again (as serving does to an upload) and the clip is written as a
   16 kHz PCM_16 WAV, atomically (temp file, then rename), with a JSON sidecar holding its manifest
   row. A re-run skips every clip whose WAV and sidecar exist, so an interrupted build resumes.

Each clip's randomness comes from a generator seeded by (config seed, clip id), so a clip's content
does not depend on how many other clips or systems the build has.

The parts live beside this module: :mod:`.real` (real speech and windows), :mod:`.fakes`
(generators and fake plan), :mod:`.make` (one clip), :mod:`.fingerprint` (reuse keys),
:mod:`.verify` and :mod:`.parallel` (``--jobs``).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from services.detector.dataset.build.fakes import load_generators, plan_fakes
from services.detector.dataset.build.fingerprint import fingerprints as build_fingerprints
from services.detector.dataset.build.items import (
    MANIFEST_COLUMNS,
    SPLITS,
    WINDOW_KINDS,
    BuildSummary,
    Item,
    RealRecording,
    Shard,
    Sources,
    Verification,
    by_system,
    clean,
    window_cache_path,
    write_json,
)
from services.detector.dataset.build.make import ClipMaker
from services.detector.dataset.build.real import RealSpeech
from services.detector.dataset.build.verify import remake_and_compare
from services.detector.dataset.config import BuildConfig
from services.detector.dataset.generators import TextBank
from services.detector.dataset.probe import probe_manifest
from shared.audio import Audio, LoadPolicy
from shared.files import write_atomic


class DatasetBuilder:
    """Builds one dataset from a :class:`BuildConfig` (see module docstring)."""

    def __init__(
        self,
        config: BuildConfig,
        *,
        output_dir: Path | None = None,
        window_cache_dir: Path | None = None,
        log: Callable[[str], None] = print,
    ) -> None:
        self.config = config
        self.output_dir = Path(output_dir) if output_dir else config.output_path()
        #: Fake windows before channel and augmentation; an as-recorded build reads the main build's.
        self.window_cache_dir = Path(window_cache_dir) if window_cache_dir else window_cache_path(self.output_dir)
        self.log = log
        self.policy = LoadPolicy()
        #: What was skipped or given up, shared with the parts below; each run starts it afresh.
        self.warnings: list[str] = []
        self.real = RealSpeech(config, self.policy, self.warnings)
        self.maker = ClipMaker(config, self.policy, self.real, self.window_cache_dir, self.warnings)
        self._generators: tuple[dict[str, object], dict[str, str]] | None = None
        # The build's wall time counts from here, so a parallel build's includes its shards.
        self.started_s = time.monotonic()

    # -- real speech (:class:`RealSpeech`) -------------------------------------------------------------
    def read_real(self) -> list[RealRecording]:
        """The bonafide recordings of every real source, each assigned to its split."""
        return self.real.read()

    def load_real(self, index: int, recordings: list[RealRecording]) -> Audio | None:
        """The recording prepared by the serving policy, or None (warned once) if it is unusable."""
        return self.real.load(index, recordings)

    def _donors(self, recordings: list[RealRecording]) -> dict[str, tuple[list[int], np.ndarray | None]]:
        return self.real.donors(recordings)

    # -- fakes ----------------------------------------------------------------------------------------
    def build_generators(self) -> tuple[dict[str, object], dict[str, str]]:
        """Load every system's generator once per builder (a parallel build's final pass reuses them);
        returns the generators and, for optional systems that could not load, why."""
        if self._generators is None:
            self._generators = load_generators(self.config.systems)
        return self._generators

    def fingerprints(self, generators: dict[str, object] | None = None, window_only: bool = False) -> dict[str, str]:
        """Per system (and ``bonafide``), a hash of every setting that shapes its clips' content
        (:func:`~services.detector.dataset.build.fingerprint.fingerprints`)."""
        return build_fingerprints(self.config, self.policy, generators, window_only)

    # -- the whole build ----------------------------------------------------------------------------
    def run(self, *, probe: bool | None = None, shard: Shard | None = None) -> BuildSummary | None:
        """Make every missing clip, then write the manifest (and run the probe).

        With ``shard`` this process makes only its share of the clips (by clip id) and returns
        ``None`` without a manifest: a final run without a shard reuses them and writes it.
        """
        started = self.started_s
        self.warnings.clear()  # each pass reports its own (a parallel build's final pass follows a shard)
        out = self.output_dir
        out.mkdir(parents=True, exist_ok=True)
        real_items, fake_items, sources, skipped = self._plan()
        generators = sources.generators
        fingerprints = self.fingerprints(generators)
        self.maker.window_fingerprints = self.fingerprints(generators, window_only=True)
        rows: list[dict[str, str]] = []
        failed = reused = 0
        for system, items in by_system(real_items + fake_items).items():
            if shard is not None:
                items = [item for item in items if shard.holds(item.item_id)]
            for item in tqdm(items, desc=f"{system}{shard.suffix if shard else ''}", unit="clip"):
                wav_path = out / item.relpath
                side_path = wav_path.with_suffix(".json")
                fingerprint = fingerprints["bonafide" if item.kind in WINDOW_KINDS else item.system]
                if wav_path.exists() and side_path.exists():
                    try:
                        sidecar = json.loads(side_path.read_text(encoding="utf-8"))
                    except json.JSONDecodeError:
                        sidecar = {}  # a damaged sidecar: make the clip again
                    if sidecar.get("fingerprint") == fingerprint and "row" in sidecar:
                        rows.append(sidecar["row"])
                        reused += 1
                        continue
                made = self.maker.make_row(item, sources)
                if made is None:
                    failed += 1
                    continue
                audio, row = made
                write_atomic(wav_path, audio.write)
                sidecar = {"fingerprint": fingerprint, "row": row}
                write_atomic(side_path, lambda temp, sidecar=sidecar: write_json(temp, sidecar))
                rows.append(row)
        if shard is not None:
            made = len(rows) - reused
            self.log(f"shard {shard.index + 1}/{shard.count}: {made} clips made, {reused} reused, {failed} failed")
            return None

        removed = self._remove_orphans(out, {item.relpath for item in real_items + fake_items})
        if removed:
            self.log(f"removed {removed} clip(s) of an earlier build that this plan no longer holds")
        rows.sort(key=lambda r: (SPLITS.index(r["split"]), r["label"], r["system"], r["path"]))
        manifest = out / "manifest.tsv"

        def write_manifest(temp: Path) -> None:
            with temp.open("w", encoding="utf-8", newline="") as handle:
                handle.write("\t".join(MANIFEST_COLUMNS) + "\n")
                for row in rows:
                    handle.write("\t".join(clean(row[column]) for column in MANIFEST_COLUMNS) + "\n")

        write_atomic(manifest, write_manifest)
        counts = {
            split: {
                label: sum(1 for r in rows if r["split"] == split and r["label"] == label)
                for label in ("bonafide", "spoof")
            }
            for split in SPLITS
        }
        per_system = dict(sorted(Counter(f"{r['split']}:{r['system']}" for r in rows).items()))
        for split, count in counts.items():
            if min(count.values()) == 0:
                self.warnings.append(f"split {split} lacks a class: {count}")
        summary = BuildSummary(
            output_dir=out,
            manifest=manifest,
            counts=counts,
            per_system=per_system,
            skipped_systems=skipped,
            failed_items=failed,
            reused_items=reused,
            wall_s=time.monotonic() - started,
            warnings=list(self.warnings),
        )
        if self.config.probe if probe is None else probe:
            result = probe_manifest(manifest, out / "probe.json")
            summary.probe = result.as_dict()
            self.log(result.table())
        info = {
            "config": self.config.model_dump(mode="json"),
            "counts": counts,
            "per_system": per_system,
            "skipped_systems": skipped,
            "failed_items": failed,
            "reused_items": reused,
            "build_wall_s": round(time.monotonic() - started, 1),
            # Float results of the neural vocoders and Griffin-Lim's mel inversion depend on how many
            # threads sum them: `vcfad data verify` remakes clips with this count.
            "compute_threads": compute_threads(),
            "warnings": self.warnings[:200],
        }
        write_atomic(out / "build_info.json", lambda temp: write_json(temp, info, indent=2))
        return summary

    def _plan(self) -> tuple[list[Item], list[Item], Sources, dict[str, str]]:
        """Every planned clip (real, fake), what they are made from, and the skipped systems."""
        recordings = self.read_real()
        real_count = sum(1 for real in recordings if real.is_real)
        self.log(f"{real_count} real recordings from {len(self.config.real)} source(s) and the external catalogue")
        windows = self.real.plan_windows(recordings)
        real_items = [item for item in windows if item.kind == "real"]
        generators, skipped = self.build_generators()
        self.warnings += [f"system {name!r} skipped: {why}" for name, why in skipped.items()]
        systems = [s for s in self.config.systems if s.name in generators]
        # Generated fakes follow the real windows' count; recorded ones come on top (fakes_per_real
        # sets the balance of a build that has both).
        fake_items = [item for item in windows if item.kind == "recorded"]
        fake_items += plan_fakes(self.config, real_items, systems, self.warnings)
        bank = TextBank(self.config.resolve_data(self.config.text_csv))
        return real_items, fake_items, Sources(recordings, self.real.donors(recordings), generators, bank), skipped

    def verify(self, per_system: int = 3) -> Verification:
        """Make ``per_system`` built clips of every system (and real source) again from scratch —
        window, channel and augmentation, no cache — and compare them with the files on disk.

        Lists, per system, each clip checked (evenly spaced
        through the plan; clips not built are skipped). Identical means within two steps of the
        16-bit files' resolution: the clip is a function of its seed alone. The clips are remade
        with the build's thread count (``build_info.json``), which float sums depend on.
        """
        # Torch only to set its thread count, as the build had it: `vcfad data verify` alone needs it.
        import torch

        info_path = self.output_dir / "build_info.json"
        info = json.loads(info_path.read_text(encoding="utf-8")) if info_path.is_file() else {}
        threads = int(info.get("compute_threads") or compute_threads())
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            with threadpool_limits(limits=threads):
                real_items, fake_items, sources, _ = self._plan()
                fingerprints = self.fingerprints(sources.generators)
                checks = remake_and_compare(
                    self.output_dir, real_items + fake_items, sources, fingerprints, self.maker, per_system
                )
                return Verification(threads, "compute_threads" in info, checks)
        finally:
            torch.set_num_threads(previous)

    @staticmethod
    def _remove_orphans(out: Path, planned: set[str]) -> int:
        """Delete clips (and sidecars) under ``out/audio`` that the current plan does not hold."""
        removed = 0
        cache = window_cache_path(out)  # this build's own cache, never one it only reads
        for root in (out / "audio", cache / "audio"):
            if root.is_dir():
                for path in root.rglob("*"):
                    relative = path.with_suffix(".wav").relative_to(cache if root.parent == cache else out)
                    if str(relative) not in planned and path.suffix in (".wav", ".json") and path.is_file():
                        path.unlink()
                        removed += path.suffix == ".wav" and root.parent != cache
        return removed


def as_recorded_target(config: BuildConfig, output_dir: Path | None = None) -> tuple[BuildConfig, Path, Path]:
    """The as-recorded copy of the build in ``output_dir`` (default: the config's folder): its
    config (:meth:`BuildConfig.as_recorded`), its folder ``<output>/as-recorded`` and the main
    build's window cache, which it reads instead of synthesizing again."""
    base = Path(output_dir) if output_dir else config.output_path()
    return config.as_recorded(), base / "as-recorded", window_cache_path(base)


def compute_threads() -> int:
    """Torch's intra-op thread count, which float sums of the neural generators depend on."""
    # Torch here only: the count is recorded for `vcfad data verify`; nothing else of it is used.
    import torch

    return torch.get_num_threads()
