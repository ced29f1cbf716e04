"""Recordings of a build: the bonafide recordings of every source (and the external catalogue's
machine-made ones), each assigned to its split (real speakers disjoint), loaded by the serving
policy once, the windows cut from them, and the donors fakes draw a real recording from (to copy,
to clone, to take its channel)."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import numpy as np
from tqdm import tqdm

from services.detector.dataset.build.items import (
    SPLITS,
    BuildError,
    Item,
    RealRecording,
    draw_duration,
    item_rng,
    mean_duration,
)
from services.detector.dataset.config import BuildConfig, External, RealSource, Split
from services.detector.dataset.readers import Recording, read_corpus
from shared.audio import Audio, AudioError, LoadPolicy, load_audio
from shared.seeds import stable_int
from shared.sources import (
    SnapshotStore,
    assign_splits,
    blob_ids_under,
    collect_clips,
    load_sources,
)


class RealSpeech:
    """The real recordings of ``config``; ``warnings`` collects what was skipped."""

    def __init__(self, config: BuildConfig, policy: LoadPolicy, warnings: list[str]) -> None:
        self.config = config
        self.policy = policy
        self.warnings = warnings
        self._audio_cache: dict[int, Audio | None] = {}

    def read(self) -> list[RealRecording]:
        """The bonafide recordings of every real source, each assigned to its split."""
        out: list[RealRecording] = []
        data_root = self.config.data_root_path()
        for source in self.config.real:
            path = self.config.resolve_data(source.path)
            if source.optional and not path.exists():
                self.warnings.append(f"real source {source.name!r} skipped: {path} does not exist")
                continue
            corpus = read_corpus(source.reader, path, source.include, source.exclude, source.speaker)
            recordings = [r for r in corpus if r.label == "bonafide"]
            if not recordings:
                raise BuildError(f"real source {source.name!r}: no bonafide recordings at {path}")
            rng = item_rng(self.config.seed, "clips", source.name)
            if source.max_clips is not None and len(recordings) > source.max_clips:
                picks = sorted(rng.choice(len(recordings), size=source.max_clips, replace=False))
                recordings = [recordings[int(i)] for i in picks]
            speaker_split = self._speaker_splits(source, sorted({r.speaker for r in recordings}))
            for recording in recordings:
                if source.split == "native":
                    if recording.native_split is None:
                        raise BuildError(f"real source {source.name!r}: reader {source.reader} has no native split")
                    split: Split = recording.native_split  # type: ignore[assignment]  # readers give train/dev/test
                elif source.split == "by-speaker":
                    split = speaker_split[recording.speaker]
                else:
                    split = source.split
                try:
                    key = str(recording.path.relative_to(data_root))
                except ValueError:
                    key = str(recording.path)
                out.append(RealRecording(recording, source, split, key))
        if self.config.external is not None:
            out += self.read_external(self.config.external)
        self._check_speaker_disjoint([real for real in out if real.is_real])
        return out

    def read_external(self, external: External) -> list[RealRecording]:
        """The catalogue's clips that this machine's snapshots hold, extracted, each with the split
        of its source. Speakers are named per source (``<source>/<speaker>``): the same corpus
        speaker may appear on pages of different splits, never in one page's two splits."""
        sources = load_sources(external.catalogue_path())
        for key, names in (("only_sources", external.only_sources), ("exclude_sources", external.exclude_sources)):
            unknown = sorted(set(names) - {source.name for source in sources})
            if unknown:
                raise BuildError(f"external.{key}: not in the catalogue: {', '.join(unknown)}")
        if external.only_sources:
            sources = [source for source in sources if source.name in external.only_sources]
        sources = [source for source in sources if source.name not in external.exclude_sources]
        store = SnapshotStore(external.snapshot_roots(), external.cache_path())
        excluded = frozenset().union(
            *(blob_ids_under(self.config.resolve_data(folder)) for folder in external.exclude_copies_of)
        )
        collected = collect_clips(
            sources,
            store,
            seed=self.config.seed,
            max_clips_per_set=external.max_clips_per_set,
            max_real_clips_per_set=external.max_real_clips_per_set,
            excluded_blobs=excluded,
        )
        if collected.unavailable:
            self.warnings.append(
                f"external: {len(collected.unavailable)} source(s) without a snapshot here: "
                + ", ".join(collected.unavailable[:20])
            )
        if collected.excluded_copies or collected.duplicates:
            self.warnings.append(
                f"external: dropped {collected.excluded_copies} copies of excluded files and "
                f"{collected.duplicates} copies of other sources' files"
            )
        if not collected.clips and not external.optional:
            searched = ", ".join(str(root) for root in external.snapshot_roots())
            raise BuildError(
                f"external: none of the {len(sources)} sources of {external.catalogue} has a snapshot under "
                f"{searched} (set VCFAD_SNAPSHOTS; docs/dataset.md, 'External sources')"
            )
        clips = [clip for clip in collected.clips if clip.family not in external.exclude_families]
        # Counted under the fake sets' cap alone: a larger real cap must not move a source to
        # another split. Excluded families are fake sets, whose cap is that cap.
        counts = dict(collected.split_counts)
        for clip in collected.clips:
            if clip.family in external.exclude_families:
                counts[clip.source] -= 1
        # Only sources with clips here take part, so a missing snapshot does not skew the shares.
        present = [source for source in sources if counts.get(source.name)]
        splits = assign_splits(present, counts, self.config.seed, external.dev_fraction, external.test_fraction)
        paths = store.extract(clips)
        real_sources = {
            name: RealSource(name=f"external:{name}", reader="folder", path=str(external.cache_path()), split=split)
            for name, split in splits.items()
        }
        out = []
        for clip, path in zip(clips, paths, strict=True):
            recording = Recording(
                path=path, speaker=f"{clip.source}/{clip.speaker}", label=clip.label, system=clip.system
            )
            key = f"{clip.repository}@{clip.commit[:12]}/{clip.repo_path}"
            split = splits[clip.source]
            family = clip.family or "real"
            out.append(RealRecording(recording, real_sources[clip.source], split, key, family, external=True))
        return out

    def _speaker_splits(self, source: RealSource, speakers: list[str]) -> dict[str, Split]:
        ordered = sorted(speakers, key=lambda s: stable_int(self.config.seed, "speaker", s))
        n_dev = round(len(ordered) * source.dev_fraction)
        n_test = round(len(ordered) * source.test_fraction)
        splits: dict[str, Split] = {}
        for index, speaker in enumerate(ordered):
            splits[speaker] = "dev" if index < n_dev else "test" if index < n_dev + n_test else "train"
        return splits

    def _check_speaker_disjoint(self, recordings: list[RealRecording]) -> None:
        where: dict[str, set[str]] = defaultdict(set)
        for real in recordings:
            where[real.recording.speaker].add(real.split)
        shared = sorted(speaker for speaker, splits in where.items() if len(splits) > 1)
        if shared:
            raise BuildError(f"speakers in more than one split: {', '.join(shared[:10])}")

    def load(self, index: int, recordings: list[RealRecording]) -> Audio | None:
        """The recording prepared by the serving policy, or None (warned once) if it is unusable."""
        if index not in self._audio_cache:
            try:
                self._audio_cache[index] = load_audio(recordings[index].recording.path, self.policy)
            except AudioError as error:
                self.warnings.append(f"skipped real recording: {error}")
                self._audio_cache[index] = None
        return self._audio_cache[index]

    def plan_windows(self, recordings: list[RealRecording]) -> list[Item]:
        """Windows of every recording: real ones (kind ``real``; ``max_real_windows`` caps them per
        split) and machine-made ones (kind ``recorded``), drawn by one rule."""
        windows = self.config.windows
        mean_s = mean_duration(windows)
        by_split: dict[str, list[Item]] = defaultdict(list)
        recorded: list[Item] = []
        for index in tqdm(range(len(recordings)), desc="recordings", unit="file"):
            audio = self.load(index, recordings)
            if audio is None:
                continue
            real = recordings[index]
            rng = item_rng(self.config.seed, "windows", real.key)
            # Windows are placed at random (they may overlap) rather than tiled: tiling until a
            # draw no longer fits rejects long draws more often and skews real clips short.
            count = min(windows.max_per_clip, int(windows.coverage * audio.duration_s / mean_s))
            stem = Path(real.key).stem
            if real.external and self.config.external is not None:
                # Demo pages hold short clips (prompts, single sentences): each gives at least one
                # window, cut to the clip's length, whichever its class, and a few at most.
                count = min(max(count, 1), self.config.external.max_windows_per_file)
            label, folder = ("bonafide", "bonafide") if real.is_real else ("spoof", _folder_name(real))
            for _ in range(count):
                duration = draw_duration(rng, windows)
                if real.external:
                    duration = min(duration, audio.duration_s)
                elif duration > audio.duration_s:
                    continue
                position = float(rng.uniform(0.0, audio.duration_s - duration))
                start_ms, length_ms = round(position * 1000), round(duration * 1000)
                item = Item(
                    item_id=f"{label}/{real.key}@{start_ms}+{length_ms}",
                    relpath=f"audio/{real.split}/{folder}/{stem}-{start_ms:06d}-{length_ms:04d}.wav",
                    split=real.split,
                    kind="real" if real.is_real else "recorded",
                    system="bonafide" if real.is_real else real.recording.system,
                    family=real.family,
                    recording=index,
                    start_s=position,
                    duration_s=duration,
                )
                (by_split[real.split] if real.is_real else recorded).append(item)
        items: list[Item] = []
        for split in SPLITS:
            chosen = by_split.get(split, [])
            cap = self.config.max_real_windows.get(split)
            if cap is not None and len(chosen) > cap:
                rng = item_rng(self.config.seed, "cap", split)
                chosen = [chosen[int(i)] for i in sorted(rng.choice(len(chosen), size=cap, replace=False))]
            items += chosen
        return items + recorded

    def donors(self, recordings: list[RealRecording]) -> dict[str, tuple[list[int], np.ndarray | None]]:
        """Where fakes draw a real recording (to copy, to clone, to take its channel), per split:
        every recording alike, or (``fake_sources_by = "seconds"``) by seconds of speech, so the
        fake side mirrors the real side's corpora whatever their file counts."""
        by_split: dict[str, list[int]] = defaultdict(list)
        for index, real in enumerate(recordings):
            if real.is_real:
                by_split[real.split].append(index)
        if self.config.fake_sources_by == "recording":
            return {split: (pool, None) for split, pool in by_split.items()}
        donors: dict[str, tuple[list[int], np.ndarray | None]] = {}
        for split, pool in by_split.items():
            loaded = [self.load(index, recordings) for index in pool]
            seconds = np.array([audio.duration_s if audio is not None else 0.0 for audio in loaded])
            if seconds.sum() > 0:
                donors[split] = (pool, seconds / seconds.sum())
        return donors


def _folder_name(recording: RealRecording) -> str:
    """A file-system-safe folder for a machine-made recording's windows: its system and source."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{recording.source.name}-{recording.recording.system}")
    return "external-" + safe.strip("-")[:80]
