"""`vcfad data build CONFIG`: real windows + automatically labelled fakes → manifest + audio cache.

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
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from services.detector.dataset.augment import augment
from services.detector.dataset.config import FAMILIES, BuildConfig, RealSource, Split, System, Windows
from services.detector.dataset.generators import (
    COPY_KINDS,
    TEXT_KINDS,
    GeneratorUnavailableError,
    TextBank,
    build_generator,
)
from services.detector.dataset.readers import Recording, read_corpus
from shared.audio import Audio, AudioError, LoadPolicy, decode_audio, load_audio
from shared.channel import ChannelMatcher, ChannelProfile
from shared.files import write_atomic
from shared.seeds import stable_int

SPLITS: tuple[Split, ...] = ("train", "dev", "test")
MANIFEST_COLUMNS = (
    "path", "label", "speaker", "system", "family", "split",
    "source", "augment", "duration_s", "sample_rate", "transcript",
)  # fmt: skip
#: Attempts per fake clip before it is given up (a TTS failure, a too-short result).
_ATTEMPTS = 3
#: Bump when the making of clips changes in code, so that old clips are not reused.
_CONTENT_VERSION = 1


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
    recording: Recording
    source: RealSource
    split: Split
    key: str  # the recording's path relative to data_root (or absolute), for the source column


@dataclass
class Item:
    """One clip to make. ``kind`` is ``real``, ``text``, ``copy`` or ``clone``."""

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
class _Sources:
    """What a build draws clips from: the real recordings (and their indices per split), the
    loaded fake generators and the text bank."""

    recordings: list[RealRecording]
    #: Per split, the real recordings' indices and the chance of drawing each (None: all alike;
    #: else its share of the split's real speech, in seconds: ``fake_sources_by``).
    by_split: dict[str, tuple[list[int], np.ndarray | None]]
    generators: dict[str, object]
    bank: TextBank


def _clean(value: object) -> str:
    return " ".join(str(value).replace("\t", " ").split())


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
        self.warnings: list[str] = []
        self._audio_cache: dict[int, Audio | None] = {}
        self.channel_matcher = ChannelMatcher()
        self._channel_profiles: dict[int, ChannelProfile] = {}
        self._window_fingerprints: dict[str, str] = {}
        self._generators: tuple[dict[str, object], dict[str, str]] | None = None
        # The build's wall time counts from here, so a parallel build's includes its shards.
        self.started_s = time.monotonic()

    # -- real speech --------------------------------------------------------------------------------
    def read_real(self) -> list[RealRecording]:
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
                    split: Split = recording.native_split  # type: ignore[assignment]
                elif source.split == "by-speaker":
                    split = speaker_split[recording.speaker]
                else:
                    split = source.split
                try:
                    key = str(recording.path.relative_to(data_root))
                except ValueError:
                    key = str(recording.path)
                out.append(RealRecording(recording, source, split, key))
        self._check_speaker_disjoint(out)
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

    def load_real(self, index: int, recordings: list[RealRecording]) -> Audio | None:
        """The recording prepared by the serving policy, or None (warned once) if it is unusable."""
        if index not in self._audio_cache:
            try:
                self._audio_cache[index] = load_audio(recordings[index].recording.path, self.policy)
            except AudioError as error:
                self.warnings.append(f"skipped real recording: {error}")
                self._audio_cache[index] = None
        return self._audio_cache[index]

    def plan_real(self, recordings: list[RealRecording]) -> list[Item]:
        from tqdm import tqdm

        windows = self.config.windows
        mean_s = _mean_duration(windows)
        by_split: dict[str, list[Item]] = defaultdict(list)
        for index in tqdm(range(len(recordings)), desc="real recordings", unit="file"):
            audio = self.load_real(index, recordings)
            if audio is None:
                continue
            real = recordings[index]
            rng = item_rng(self.config.seed, "windows", real.key)
            # Windows are placed at random (they may overlap) rather than tiled: tiling until a
            # draw no longer fits rejects long draws more often and skews real clips short.
            count = min(windows.max_per_clip, int(windows.coverage * audio.duration_s / mean_s))
            stem = Path(real.key).stem
            for _ in range(count):
                duration = draw_duration(rng, windows)
                if duration > audio.duration_s:
                    continue
                position = float(rng.uniform(0.0, audio.duration_s - duration))
                start_ms, length_ms = round(position * 1000), round(duration * 1000)
                by_split[real.split].append(
                    Item(
                        item_id=f"bonafide/{real.key}@{start_ms}+{length_ms}",
                        relpath=f"audio/{real.split}/bonafide/{stem}-{start_ms:06d}-{length_ms:04d}.wav",
                        split=real.split,
                        kind="real",
                        system="bonafide",
                        family="real",
                        recording=index,
                        start_s=position,
                        duration_s=duration,
                    )
                )
        items: list[Item] = []
        for split in SPLITS:
            chosen = by_split.get(split, [])
            cap = self.config.max_real_windows.get(split)
            if cap is not None and len(chosen) > cap:
                rng = item_rng(self.config.seed, "cap", split)
                chosen = [chosen[int(i)] for i in sorted(rng.choice(len(chosen), size=cap, replace=False))]
            items += chosen
        return items

    # -- fakes ----------------------------------------------------------------------------------------
    def build_generators(self) -> tuple[dict[str, object], dict[str, str]]:
        """Load every system's generator once per builder (a parallel build's final pass reuses them);
        returns the generators and, for optional systems that could not load, why."""
        from tqdm import tqdm

        if self._generators is not None:
            return self._generators
        generators: dict[str, object] = {}
        skipped: dict[str, str] = {}
        for system in tqdm(self.config.systems, desc="loading generators", unit="system"):
            try:
                generators[system.name] = build_generator(system)
            except GeneratorUnavailableError as error:
                if not system.optional:
                    raise BuildError(f"system {system.name!r}: {error}") from None
                skipped[system.name] = str(error)
        self._generators = generators, skipped
        return self._generators

    def plan_fakes(self, real_items: list[Item], systems: list[System]) -> list[Item]:
        real_count = Counter(item.split for item in real_items)
        items: list[Item] = []
        for split in SPLITS:
            here = [s for s in systems if s.split in (split, "by-speaker")]
            target = round(real_count.get(split, 0) * self.config.fakes_per_real)
            if not here or target == 0:
                if target:
                    self.warnings.append(f"split {split}: no fake system available; it holds real clips only")
                continue
            for system, count in zip(here, _apportion(target, [s.weight for s in here]), strict=True):
                for index in range(count):
                    item_id = f"{system.name}/{split}/{index}"
                    rng = item_rng(self.config.seed, "fake", item_id)
                    items.append(
                        Item(
                            item_id=item_id,
                            relpath=f"audio/{split}/{system.name}/{index:05d}.wav",
                            split=split,
                            kind=_item_kind(system),
                            system=system.name,
                            family=FAMILIES[system.kind],
                            duration_s=draw_duration(rng, self.config.windows),
                        )
                    )
        return items

    # -- making one clip --------------------------------------------------------------------------
    def _crop(self, audio: Audio, duration_s: float, rng: np.random.Generator) -> tuple[Audio, float]:
        if audio.duration_s <= duration_s:
            return audio, 0.0
        start = float(rng.uniform(0.0, audio.duration_s - duration_s))
        return audio.crop(start, duration_s), start

    def _prepare(self, raw: Audio) -> Audio:
        return load_audio(raw.to_wav_bytes(), self.policy)

    def make_item(self, item: Item, sources: _Sources, attempt: int) -> tuple[Audio, dict[str, str]]:
        """The window audio (before augmentation) and its manifest fields."""
        rng = item_rng(self.config.seed, "content", item.item_id, attempt)
        recordings = sources.recordings
        if item.kind == "real":
            assert item.recording is not None
            real = recordings[item.recording]
            audio = self.load_real(item.recording, recordings)
            assert audio is not None
            window = audio.crop(item.start_s, item.duration_s)
            return window, {
                "speaker": real.recording.speaker,
                "source": f"{real.key}@{item.start_s:.2f}",
                "transcript": "",
            }
        generator = sources.generators[item.system]
        if item.kind == "copy":
            index, audio = self._random_real(item.split, sources, rng)
            window, start = self._crop(audio, item.duration_s, rng)
            copy = self._prepare(generator.copy(window, rng))  # type: ignore[attr-defined]
            return copy, {
                "speaker": recordings[index].recording.speaker,
                "source": f"{recordings[index].key}@{start:.2f}",
                "transcript": "",
            }
        sentences = sources.bank.draw(rng, 6)
        audio = None
        # Start with about enough text (~14 characters a second) so slow engines seldom run twice.
        first = 1
        while first < len(sentences) and sum(len(s.text) for s in sentences[:first]) < 14 * item.duration_s:
            first += 1
        for count in range(first, len(sentences) + 1):
            text = " ".join(s.text for s in sentences[:count])
            if item.kind == "clone":
                index, reference = self._random_real(item.split, sources, rng)
                speaker = "clone:" + recordings[index].recording.speaker
                raw = generator.clone(reference, text)  # type: ignore[attr-defined]
            else:
                raw, speaker = generator.speak(text, rng)  # type: ignore[attr-defined]
            audio = self._prepare(raw)
            if audio.duration_s >= item.duration_s:
                break
        assert audio is not None
        window, _ = self._crop(audio, item.duration_s, rng)
        return window, {
            "speaker": speaker,
            "source": "vctk:" + "|".join(s.key for s in sentences[:count]),
            "transcript": text,
        }

    def cached_window(self, item: Item, sources: _Sources, attempt: int) -> tuple[Audio, dict[str, str]]:
        """:meth:`make_item`, with fake windows kept in ``cache/windows/`` (slow engines run once)."""
        if item.kind == "real":
            return self.make_item(item, sources, attempt)
        wav_path = self.window_cache_dir / item.relpath
        side_path = wav_path.with_suffix(".json")
        fingerprint = self._window_fingerprints[item.system]
        if attempt == 0 and wav_path.exists() and side_path.exists():
            try:
                sidecar = json.loads(side_path.read_text(encoding="utf-8"))
                if sidecar.get("fingerprint") == fingerprint:
                    return decode_audio(wav_path), sidecar["fields"]
            except (json.JSONDecodeError, KeyError, AudioError):
                pass  # damaged: make it again
        window, fields = self.make_item(item, sources, attempt)
        write_atomic(wav_path, lambda temp: window.write(temp, subtype="FLOAT"))
        sidecar = {"fingerprint": fingerprint, "fields": fields}
        write_atomic(side_path, lambda temp: _write_json(temp, sidecar))
        return window, fields

    def _random_real(self, split: str, sources: _Sources, rng: np.random.Generator) -> tuple[int, Audio]:
        pool, chance = sources.by_split.get(split, ([], None))
        if not pool:
            raise BuildError(f"split {split}: no real recordings to copy or clone from")
        for _ in range(10):
            index = int(rng.choice(pool)) if chance is None else pool[int(rng.choice(len(pool), p=chance))]
            audio = self.load_real(index, sources.recordings)
            if audio is not None:
                return index, audio
        raise BuildError(f"split {split}: no readable real recordings")

    def finish(self, window: Audio, item: Item, sources: _Sources) -> tuple[Audio, str]:
        steps = []
        transfer_p = self.config.augment.channel_transfer_p
        # Its own random stream, so turning the transfer on leaves every other draw unchanged.
        channel_rng = item_rng(self.config.seed, "channel", item.item_id)
        if item.kind == "text" and transfer_p and channel_rng.random() < transfer_p:
            index, real_audio = self._random_real(item.split, sources, channel_rng)
            if index not in self._channel_profiles:
                self._channel_profiles[index] = self.channel_matcher.profile([real_audio])
            window = self.channel_matcher.apply(window, self._channel_profiles[index], seed=stable_int(item.item_id))
            steps.append(f"channel({sources.recordings[index].recording.speaker})")
        rng = item_rng(self.config.seed, "augment", item.item_id)
        # Distortion draws from its own stream too: turning it on changes only the clips it hits.
        distortion_rng = item_rng(self.config.seed, "distortion", item.item_id)
        augmented, description = augment(window, rng, self.config.augment, distortion_rng=distortion_rng)
        if description != "none" or not steps:
            steps.append(description)
        return self._prepare(augmented), "+".join(steps)

    def fingerprints(self, generators: dict[str, object] | None = None, window_only: bool = False) -> dict[str, str]:
        """Per system (and ``bonafide``), a hash of every setting that shapes its clips' content.

        A finished clip is reused only when its sidecar carries the same fingerprint, so changing
        the windows, the augmentation or a system's options remakes exactly the affected clips.
        With ``window_only`` the augmentation is left out: the fingerprint of the cached fake
        windows (``cache/windows/``), which an augmentation change does not invalidate.
        """
        shared = {
            "seed": self.config.seed,
            # How many windows there are does not shape any clip's content: growing the count
            # reuses every clip already made (window and fake ids are seeded one by one).
            "windows": self.config.windows.model_dump(mode="json", exclude={"max_per_clip", "coverage"}),
            "policy": repr(self.policy),
            "version": _CONTENT_VERSION,
            # Fakes copy, clone and take channels from the real recordings: another pool draws
            # other sources for the same clip ids, so a change there remakes the fakes too.
            "real": [source.model_dump(mode="json") for source in self.config.real],
            "fake_sources_by": self.config.fake_sources_by,
        }
        if not window_only:
            shared["augment"] = self.config.augment.model_dump(mode="json")
        out = {"bonafide": json.dumps(shared)}
        for system in self.config.systems:
            detail = system.model_dump(mode="json", exclude={"weight", "optional", "split"})
            # A trained model's identity (file size and time), so a retrained model remakes its clips.
            model_id = getattr((generators or {}).get(system.name), "content_id", "")
            extra = {"model": model_id} if model_id else {}
            out[system.name] = json.dumps({**shared, "system": detail, **extra}, sort_keys=True)
        return {name: hashlib.sha1(text.encode("utf-8")).hexdigest()[:16] for name, text in out.items()}

    # -- the whole build ----------------------------------------------------------------------------
    def run(self, *, probe: bool | None = None, shard: Shard | None = None) -> BuildSummary | None:
        """Make every missing clip, then write the manifest (and run the probe).

        With ``shard`` this process makes only its share of the clips (by clip id) and returns
        ``None`` without a manifest: a final run without a shard reuses them and writes it.
        """
        from tqdm import tqdm

        started = self.started_s
        self.warnings = []  # each pass reports its own (a parallel build's final pass follows a shard)
        out = self.output_dir
        out.mkdir(parents=True, exist_ok=True)
        real_items, fake_items, sources, skipped = self._plan()
        generators = sources.generators
        fingerprints = self.fingerprints(generators)
        self._window_fingerprints = self.fingerprints(generators, window_only=True)
        rows: list[dict[str, str]] = []
        failed = reused = 0
        for system, items in _by_system(real_items + fake_items).items():
            if shard is not None:
                items = [item for item in items if shard.holds(item.item_id)]
            for item in tqdm(items, desc=f"{system}{shard.suffix if shard else ''}", unit="clip"):
                wav_path = out / item.relpath
                side_path = wav_path.with_suffix(".json")
                fingerprint = fingerprints[item.system]
                if wav_path.exists() and side_path.exists():
                    try:
                        sidecar = json.loads(side_path.read_text(encoding="utf-8"))
                    except json.JSONDecodeError:
                        sidecar = {}  # a damaged sidecar: make the clip again
                    if sidecar.get("fingerprint") == fingerprint and "row" in sidecar:
                        rows.append(sidecar["row"])
                        reused += 1
                        continue
                made = self._make_row(item, sources)
                if made is None:
                    failed += 1
                    continue
                audio, row = made
                write_atomic(wav_path, audio.write)
                sidecar = {"fingerprint": fingerprint, "row": row}
                write_atomic(side_path, lambda temp, sidecar=sidecar: _write_json(temp, sidecar))
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
                    handle.write("\t".join(_clean(row[column]) for column in MANIFEST_COLUMNS) + "\n")

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
            from services.detector.dataset.probe import probe_manifest

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
            "compute_threads": _compute_threads(),
            "warnings": self.warnings[:200],
        }
        write_atomic(out / "build_info.json", lambda temp: _write_json(temp, info, indent=2))
        return summary

    def _plan(self) -> tuple[list[Item], list[Item], _Sources, dict[str, str]]:
        """Every planned clip (real, fake), what they are made from, and the skipped systems."""
        recordings = self.read_real()
        self.log(f"{len(recordings)} real recordings from {len(self.config.real)} source(s)")
        real_items = self.plan_real(recordings)
        generators, skipped = self.build_generators()
        self.warnings += [f"system {name!r} skipped: {why}" for name, why in skipped.items()]
        systems = [s for s in self.config.systems if s.name in generators]
        fake_items = self.plan_fakes(real_items, systems)
        bank = TextBank(self.config.resolve_data(self.config.text_csv))
        return real_items, fake_items, _Sources(recordings, self._donors(recordings), generators, bank), skipped

    def _donors(self, recordings: list[RealRecording]) -> dict[str, tuple[list[int], np.ndarray | None]]:
        """Where fakes draw a real recording (to copy, to clone, to take its channel), per split:
        every recording alike, or (``fake_sources_by = "seconds"``) by seconds of speech, so the
        fake side mirrors the real side's corpora whatever their file counts."""
        by_split: dict[str, list[int]] = defaultdict(list)
        for index, real in enumerate(recordings):
            by_split[real.split].append(index)
        if self.config.fake_sources_by == "recording":
            return {split: (pool, None) for split, pool in by_split.items()}
        donors: dict[str, tuple[list[int], np.ndarray | None]] = {}
        for split, pool in by_split.items():
            loaded = [self.load_real(index, recordings) for index in pool]
            seconds = np.array([audio.duration_s if audio is not None else 0.0 for audio in loaded])
            if seconds.sum() > 0:
                donors[split] = (pool, seconds / seconds.sum())
        return donors

    def verify(self, per_system: int = 3) -> Verification:
        """Make ``per_system`` built clips of every system (and real source) again from scratch —
        window, channel and augmentation, no cache — and compare them with the files on disk.

        Lists, per system, each clip checked (evenly spaced
        through the plan; clips not built are skipped). Identical means within two steps of the
        16-bit files' resolution: the clip is a function of its seed alone. The clips are remade
        with the build's thread count (``build_info.json``), which float sums depend on.
        """
        import torch
        from threadpoolctl import threadpool_limits

        info_path = self.output_dir / "build_info.json"
        info = json.loads(info_path.read_text(encoding="utf-8")) if info_path.is_file() else {}
        threads = int(info.get("compute_threads") or _compute_threads())
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            with threadpool_limits(limits=threads):
                return Verification(threads, "compute_threads" in info, self._remake_and_compare(per_system))
        finally:
            torch.set_num_threads(previous)

    def _remake_and_compare(self, per_system: int) -> dict[str, list[tuple[str, str]]]:
        real_items, fake_items, sources, _ = self._plan()
        fingerprints = self.fingerprints(sources.generators)
        result: dict[str, list[tuple[str, str]]] = {}
        for system, items in _by_system(real_items + fake_items).items():
            built = [item for item in items if (self.output_dir / item.relpath).exists()]
            count = min(per_system, len(built))
            spots = sorted({round(i * (len(built) - 1) / max(count - 1, 1)) for i in range(count)})
            checks = []
            for item in (built[spot] for spot in spots):
                wav_path = self.output_dir / item.relpath
                try:
                    sidecar = json.loads(wav_path.with_suffix(".json").read_text(encoding="utf-8"))
                except (OSError, json.JSONDecodeError):
                    sidecar = {}
                if sidecar.get("fingerprint") != fingerprints[item.system]:
                    checks.append((item.relpath, "stale"))
                    continue
                on_disk = decode_audio(wav_path).samples
                made = self._make_row(item, sources, cached=False)
                same = made is not None and made[0].samples.shape == on_disk.shape
                same = bool(same and np.max(np.abs(made[0].samples - on_disk)) <= 2 / 32768)
                checks.append((item.relpath, "identical" if same else "differs"))
            result[system] = checks
        return result

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

    def _make_row(self, item: Item, sources: _Sources, cached: bool = True) -> tuple[Audio, dict[str, str]] | None:
        last_error: Exception | None = None
        make_window = self.cached_window if cached else self.make_item
        for attempt in range(_ATTEMPTS):
            try:
                window, fields = make_window(item, sources, attempt)
                audio, description = self.finish(window, item, sources)
            except (AudioError, ValueError, RuntimeError, OSError) as error:
                if isinstance(error, BuildError):
                    raise
                last_error = error
                continue
            row = {
                "path": item.relpath,
                "label": "bonafide" if item.kind == "real" else "spoof",
                "speaker": fields["speaker"],
                "system": item.system,
                "family": item.family,
                "split": item.split,
                "source": fields["source"],
                "augment": description,
                "duration_s": f"{audio.duration_s:.3f}",
                "sample_rate": str(audio.sample_rate_hz),
                "transcript": fields["transcript"],
            }
            return audio, row
        self.warnings.append(f"{item.item_id}: gave up after {_ATTEMPTS} attempts: {last_error}")
        return None


def window_cache_path(output_dir: Path) -> Path:
    """Where the build in ``output_dir`` keeps its fake windows (before channel and augmentation)."""
    return Path(output_dir) / "cache" / "windows"


def as_recorded_target(config: BuildConfig, output_dir: Path | None = None) -> tuple[BuildConfig, Path, Path]:
    """The as-recorded copy of the build in ``output_dir`` (default: the config's folder): its
    config (:meth:`BuildConfig.as_recorded`), its folder ``<output>/as-recorded`` and the main
    build's window cache, which it reads instead of synthesizing again."""
    base = Path(output_dir) if output_dir else config.output_path()
    return config.as_recorded(), base / "as-recorded", window_cache_path(base)


def _compute_threads() -> int:
    import torch

    return torch.get_num_threads()


def _by_system(items: list[Item]) -> dict[str, list[Item]]:
    groups: dict[str, list[Item]] = defaultdict(list)
    for item in items:
        groups[item.system].append(item)
    return dict(groups)


def _mean_duration(windows: Windows) -> float:
    if windows.distribution == "uniform":
        return (windows.min_s + windows.max_s) / 2
    return (windows.max_s - windows.min_s) / float(np.log(windows.max_s / windows.min_s))


def _item_kind(system: System) -> str:
    if system.kind in TEXT_KINDS:
        return "text"
    return "copy" if system.kind in COPY_KINDS else "clone"


def _write_json(path: Path, data: object, indent: int | None = None) -> None:
    path.write_text(json.dumps(data, indent=indent) + "\n", encoding="utf-8")


def _apportion(total: int, weights: list[float]) -> list[int]:
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


def build_dataset(
    config: BuildConfig,
    *,
    output_dir: Path | None = None,
    probe: bool | None = None,
    jobs: int = 1,
    config_path: Path | None = None,
    window_cache_dir: Path | None = None,
) -> BuildSummary:
    """Build the dataset ``config`` describes (see :class:`DatasetBuilder`).

    ``jobs`` > 1 makes the clips in that many processes (this one and ``jobs - 1`` children running
    ``vcfad data build CONFIG_PATH --shard K/N``), then writes the manifest here. Each clip is seeded
    by its id, so the dataset does not depend on ``jobs``. Set ``OMP_NUM_THREADS`` so that
    ``jobs`` × threads does not exceed the cores.
    """
    import os

    if jobs < 1:
        raise BuildError(f"--jobs {jobs}: must be 1 or more")
    builder = DatasetBuilder(config, output_dir=output_dir, window_cache_dir=window_cache_dir)
    if jobs > 1 and window_cache_dir is not None:
        raise BuildError("a build that reads another build's window cache runs in one process (no --jobs)")
    if jobs > (os.cpu_count() or 1):
        builder.log(f"warning: --jobs {jobs} > {os.cpu_count()} cores; each job also holds every generator in memory")
    if jobs > 1:
        if config_path is None:
            raise BuildError("a parallel build needs the config file's path (its children read it)")
        _run_shards(builder, config_path, jobs)
    summary = builder.run(probe=probe)
    assert summary is not None
    return summary


def _run_shards(builder: DatasetBuilder, config_path: Path, jobs: int) -> None:
    """Make the clips of shards 2..N in child processes and shard 1 here; fail if any child fails.

    If this process fails or is interrupted, the children are stopped too: a re-run resumes them.
    """
    import signal
    import subprocess
    import sys

    command = [sys.executable, "-m", "vcfad.cli", "data", "build", str(config_path)]
    command += ["--output-dir", str(builder.output_dir)]
    children = [subprocess.Popen([*command, "--shard", f"{index + 1}/{jobs}"]) for index in range(1, jobs)]
    # A plain `kill` of this process should stop the children as Ctrl-C does (via SystemExit below).
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        builder.run(shard=Shard(0, jobs))
        codes = [child.wait() for child in children]
    except BaseException:
        for child in children:
            child.terminate()
        for child in children:
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
    failed = [f"{index + 2}/{jobs}" for index, code in enumerate(codes) if code != 0]
    if failed:
        raise BuildError(f"shard(s) {', '.join(failed)} failed; re-run the build to resume")
