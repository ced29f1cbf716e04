"""External speech sources as data: public repositories at a pinned commit, read from local snapshots.

The detector's data builder and the cloner's speaker judge both read them.

``configs/detector/sources.toml`` lists every source: the repository and commit, the licence, and
sets of files (a glob) with their label (bonafide / spoof), the system and family that made each
fake, and the corpus, recording condition, language and speaker of the speech. This module reads
that file into typed records, finds the files in a local snapshot of each repository at exactly
that commit (``git ls-tree``), extracts them into a cache (``git cat-file``, so the same bytes come
out on any machine that holds the snapshot), and summarises what a catalogue holds
(``vcfad data sources``).

A snapshot is any git directory of the repository that contains the commit: a plain
``git clone`` (``<root>/<owner>+<name>`` or ``<root>/<owner>/<name>``) or the layout the project's
fetch tool leaves (``<root>/<owner>+<name>/repo``). docs/dataset.md says how to make them.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import re
import subprocess
import tomllib
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path, PurePosixPath
from typing import Literal, get_args

import soundfile

from shared.files import write_atomic
from shared.seeds import stable_int

Label = Literal["bonafide", "spoof"]
#: How a fake was made (issue 21's families); ``classical`` = concatenative or HMM synthesis.
Family = Literal[
    "acoustic-model",
    "vocoder",
    "end-to-end",
    "codec-lm",
    "flow-matching",
    "diffusion",
    "voice-conversion",
    "classical",
]
#: Where and how the speech was recorded.
Condition = Literal[
    "studio-read",
    "audiobook",
    "crowd-sourced",
    "telephone",
    "conversational",
    "accented",
    "other-language",
    "broadcast",
    "far-field-noisy",
    "emotional-acted",
    "voice-prompts",
]
FAMILIES: tuple[str, ...] = get_args(Family)
CONDITIONS: tuple[str, ...] = get_args(Condition)
AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".m4a", ".opus")
#: Repositories kept for independent evaluation of the shipped models: a catalogue naming one is
#: refused, so no build can read them by mistake (owner/name, lower case).
RESERVED_REPOSITORIES = frozenset(
    {
        "zjlww/diffvoice-web",
        "edresson/yourtts",
        "corentinj/real-time-voice-cloning",
        "resemble-ai/resemblyzer",
        "styletts2/styletts2.github.io",
        "sh-lee-prml/hierspeechpp-demo",
        "swivid/swivid.github.io",
        "olawod/freevc-demo",
    }
)
#: The repositories ``../shared/data/external-dev`` was taken from (its SOURCE.md files): never trained
#: on, so that set stays a measure of systems and recordings the detector did not see.
EXTERNAL_DEV_REPOSITORIES = frozenset({"din05aur/audio_deepfake_detection", "harsha-2016/vctk_corpus"})
_SOURCE_KEYS = {"name", "repository", "commit", "licence", "title", "notes", "split", "sets"}
_SET_KEYS = {
    "glob",
    "exclude",
    "label",
    "corpus",
    "condition",
    "language",
    "speaker",
    "speaker_regex",
    "system",
    "family",
    "vocoder",
    "files",
    "seconds",
    "notes",
}


class SourceError(ValueError):
    """A catalogue entry or a snapshot that is not usable; the message names the source."""


@dataclass(frozen=True)
class SourceSet:
    """One group of files of a source: the same label, system and recording condition."""

    glob: str
    label: Label
    corpus: str
    condition: Condition
    language: str
    speaker: str = ""
    speaker_regex: str = ""
    system: str = "bonafide"
    family: Family | None = None
    vocoder: str = ""
    exclude: tuple[str, ...] = ()
    #: How many files the glob matched when the entry was written (checked against the snapshot).
    files: int | None = None

    def speaker_of(self, path: str) -> str:
        """The speaker of ``path``: the fixed ``speaker``, or group 1 of ``speaker_regex``."""
        if self.speaker_regex:
            found = re.search(self.speaker_regex, path)
            if found:
                return found.group(1)
        return self.speaker or "unknown"

    def matches(self, path: str) -> bool:
        """Whether a repository path belongs to the set (fnmatch over the whole path: ``*`` may
        cross ``/``), is audio, and matches none of ``exclude``."""
        return (
            path.lower().endswith(AUDIO_SUFFIXES)
            and fnmatch.fnmatchcase(path, self.glob)
            and not any(fnmatch.fnmatchcase(path, pattern) for pattern in self.exclude)
        )


@dataclass(frozen=True)
class Source:
    """One repository at one commit, and the sets of speech files it holds."""

    name: str
    repository: str
    commit: str
    licence: str
    sets: tuple[SourceSet, ...]
    title: str = ""
    notes: str = ""
    #: A fixed split (``train``/``dev``/``test``); None lets the builder assign one.
    split: str | None = None

    @property
    def snapshot_name(self) -> str:
        return self.repository.replace("/", "+")


@dataclass(frozen=True)
class SourceClip:
    """One audio file of a source, with everything the dataset and the reports need."""

    source: str
    set_index: int
    repository: str
    commit: str
    repo_path: str
    blob: str
    size_bytes: int
    label: Label
    speaker: str
    system: str
    family: Family | None
    corpus: str
    condition: Condition
    language: str
    licence: str

    @property
    def speaker_key(self) -> str:
        """A speaker id unique across sources (a page's ``p225`` is VCTK's p225 only per corpus)."""
        return f"{self.corpus}:{self.speaker}"


def _check_keys(where: str, table: dict, allowed: set[str]) -> None:
    unknown = set(table) - allowed
    if unknown:
        raise SourceError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")


def _parse_set(where: str, table: dict) -> SourceSet:
    _check_keys(where, table, _SET_KEYS)
    for key in ("glob", "label", "corpus", "condition", "language"):
        if not isinstance(table.get(key), str) or not table[key]:
            raise SourceError(f"{where}: '{key}' is required (a non-empty string)")
    label, condition, family = table["label"], table["condition"], table.get("family")
    if label not in ("bonafide", "spoof"):
        raise SourceError(f"{where}: label must be 'bonafide' or 'spoof', not {label!r}")
    if condition not in CONDITIONS:
        raise SourceError(f"{where}: condition {condition!r} is not one of {', '.join(CONDITIONS)}")
    if label == "spoof":
        if not table.get("system"):
            raise SourceError(f"{where}: a spoof set needs 'system' (what made the files)")
        if family not in FAMILIES:
            raise SourceError(f"{where}: family {family!r} is not one of {', '.join(FAMILIES)}")
    elif family is not None or table.get("system", "bonafide") != "bonafide":
        raise SourceError(f"{where}: a bonafide set has no 'system' or 'family'")
    if label == "bonafide" and not table.get("speaker") and not table.get("speaker_regex"):
        raise SourceError(f"{where}: give 'speaker' (one id for every file) or 'speaker_regex'")
    if table.get("speaker_regex"):
        try:
            pattern = re.compile(table["speaker_regex"])
        except re.error as error:
            raise SourceError(f"{where}: speaker_regex does not compile: {error}") from None
        if pattern.groups < 1:
            raise SourceError(f"{where}: speaker_regex needs a capturing group (the speaker id)")
    exclude = table.get("exclude", ())
    exclude = (exclude,) if isinstance(exclude, str) else tuple(exclude)
    return SourceSet(
        glob=table["glob"],
        label=label,
        corpus=table["corpus"],
        condition=condition,
        language=table["language"],
        speaker=table.get("speaker", ""),
        speaker_regex=table.get("speaker_regex", ""),
        system=table.get("system", "bonafide"),
        family=family,
        vocoder=table.get("vocoder", ""),
        exclude=exclude,
        files=table.get("files"),
    )


def parse_sources(document: dict, origin: str = "sources") -> list[Source]:
    """Typed sources of a parsed catalogue (``[[source]]`` tables); SourceError names a bad entry."""
    _check_keys(origin, document, {"source"})
    sources: list[Source] = []
    seen: set[str] = set()
    for index, table in enumerate(document.get("source", ())):
        name = table.get("name") or f"#{index + 1}"
        where = f"{origin}: source {name}"
        _check_keys(where, table, _SOURCE_KEYS)
        for key in ("name", "repository", "commit", "licence"):
            if not isinstance(table.get(key), str) or not table[key]:
                raise SourceError(f"{where}: '{key}' is required (a non-empty string)")
        if name in seen:
            raise SourceError(f"{where}: the name is used twice")
        seen.add(name)
        repository = table["repository"]
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9_.-]+", repository):
            raise SourceError(f"{where}: repository must be 'owner/name', not {repository!r}")
        if repository.lower() in RESERVED_REPOSITORIES:
            raise SourceError(f"{where}: {repository} is reserved for independent evaluation and is never read")
        if repository.lower() in EXTERNAL_DEV_REPOSITORIES:
            raise SourceError(f"{where}: {repository} is where external-dev comes from; it is never trained on")
        if not re.fullmatch(r"[0-9a-f]{40}", table["commit"]):
            raise SourceError(f"{where}: commit must be a full 40-character hex id")
        if table.get("split") not in (None, "train", "dev", "test"):
            raise SourceError(f"{where}: split must be train, dev or test")
        sets = tuple(_parse_set(f"{where} set {i + 1}", s) for i, s in enumerate(table.get("sets", ())))
        if not sets:
            raise SourceError(f"{where}: no [[source.sets]]")
        sources.append(
            Source(
                name=name,
                repository=repository,
                commit=table["commit"],
                licence=table["licence"],
                sets=sets,
                title=table.get("title", ""),
                notes=table.get("notes", ""),
                split=table.get("split"),
            )
        )
    return sources


def load_sources(path: Path) -> list[Source]:
    """The sources of a catalogue file (TOML)."""
    try:
        with Path(path).open("rb") as handle:
            document = tomllib.load(handle)
    except FileNotFoundError:
        raise SourceError(f"{path}: no such source catalogue") from None
    except tomllib.TOMLDecodeError as error:
        raise SourceError(f"{path}: not valid TOML: {error}") from None
    return parse_sources(document, str(path))


def snapshot_roots(folders: Sequence[str | Path], base: Path) -> list[Path]:
    """The folders searched for snapshots: ``VCFAD_SNAPSHOTS`` (paths joined by ``os.pathsep``)
    when set, else ``folders``; relative paths are taken from ``base`` (the repo root)."""
    override = os.environ.get("VCFAD_SNAPSHOTS")
    chosen = override.split(os.pathsep) if override else [str(folder) for folder in folders]
    paths = [Path(folder) for folder in chosen if folder]
    return [path if path.is_absolute() else (base / path).resolve() for path in paths]


@dataclass
class SnapshotStore:
    """Local snapshots of the catalogue's repositories, and a cache of extracted files.

    Parameters
    ----------
    roots
        Folders searched, in order, for a repository's git directory.
    cache_dir
        Where extracted files are written (``<cache>/<owner>+<name>@<commit>/<path>``).
    """

    roots: Sequence[Path]
    cache_dir: Path
    _git_dirs: dict[str, Path] = field(default_factory=dict)

    def git_dir(self, source: Source) -> Path:
        """The git directory of ``source``'s repository that holds its commit (SourceError if none)."""
        if source.repository in self._git_dirs:
            return self._git_dirs[source.repository]
        owner, name = source.repository.split("/")
        candidates = []
        for root in self.roots:
            for base in (Path(root) / source.snapshot_name, Path(root) / owner / name):
                candidates += [base / "repo" / ".git", base / "repo", base / ".git", base]
        for candidate in candidates:
            if (candidate / "HEAD").is_file() and (candidate / "objects").is_dir():
                if self._git(candidate, "cat-file", "-e", f"{source.commit}^{{commit}}", check=False).returncode:
                    continue
                self._git_dirs[source.repository] = candidate
                return candidate
        searched = ", ".join(str(root) for root in self.roots)
        raise SourceError(
            f"source {source.name}: no snapshot of {source.repository} holding commit {source.commit[:12]} "
            f"under {searched} (docs/dataset.md, 'External sources')"
        )

    def available(self, source: Source) -> bool:
        try:
            self.git_dir(source)
        except SourceError:
            return False
        return True

    @staticmethod
    def _git(git_dir: Path, *args: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run(["git", f"--git-dir={git_dir}", *args], capture_output=True, check=check, **kwargs)

    def clips(self, source: Source) -> list[SourceClip]:
        """Every file of every set of ``source`` at its commit; a file matched by two sets is an error."""
        listing = self._git(self.git_dir(source), "ls-tree", "-r", "-z", "--long", source.commit).stdout
        entries = []
        for record in listing.split(b"\0"):
            if not record:
                continue
            meta, path = record.split(b"\t", 1)
            _mode, kind, blob, size = meta.split()
            if kind == b"blob" and size.isdigit():  # "BAD": a blob the snapshot lacks (files ≥ 4 MiB)
                entries.append((path.decode("utf-8", "surrogateescape"), blob.decode(), int(size)))
        clips: list[SourceClip] = []
        owner_of: dict[str, int] = {}
        for index, source_set in enumerate(source.sets):
            for path, blob, size in entries:
                if not source_set.matches(path):
                    continue
                if path in owner_of:
                    raise SourceError(
                        f"source {source.name}: {path} is matched by sets {owner_of[path] + 1} and {index + 1}"
                    )
                owner_of[path] = index
                clips.append(
                    SourceClip(
                        source=source.name,
                        set_index=index,
                        repository=source.repository,
                        commit=source.commit,
                        repo_path=path,
                        blob=blob,
                        size_bytes=size,
                        label=source_set.label,
                        speaker=source_set.speaker_of(path),
                        system=source_set.system,
                        family=source_set.family,
                        corpus=source_set.corpus,
                        condition=source_set.condition,
                        language=source_set.language,
                        licence=source.licence,
                    )
                )
        return clips

    def local_path(self, clip: SourceClip) -> Path:
        """Where ``clip`` is (or will be) extracted."""
        return (
            self.cache_dir / f"{clip.repository.replace('/', '+')}@{clip.commit[:12]}" / PurePosixPath(clip.repo_path)
        )

    def extract(self, clips: Iterable[SourceClip]) -> list[Path]:
        """Write each clip's bytes (from its blob) into the cache; files already there are kept."""
        clips = list(clips)
        paths = [self.local_path(clip) for clip in clips]
        missing: dict[str, list[tuple[SourceClip, Path]]] = defaultdict(list)
        for clip, path in zip(clips, paths, strict=True):
            if not (path.is_file() and path.stat().st_size == clip.size_bytes):
                missing[clip.repository].append((clip, path))
        for repository, todo in missing.items():
            git_dir = self._git_dirs.get(repository)
            if git_dir is None:
                raise SourceError(f"{repository}: list its clips (SnapshotStore.clips) before extracting them")
            for path, data in self._read_blobs(git_dir, todo):
                # The build's shards extract shared sources at once: each writes its own temporary file.
                write_atomic(path, partial(Path.write_bytes, data=data))
        return paths

    @staticmethod
    def _read_blobs(git_dir: Path, todo: list[tuple[SourceClip, Path]]) -> Iterator[tuple[Path, bytes]]:
        """Blobs through one ``git cat-file --batch`` process."""
        process = subprocess.Popen(
            ["git", f"--git-dir={git_dir}", "cat-file", "--batch"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        assert process.stdin is not None and process.stdout is not None
        try:
            for clip, path in todo:
                process.stdin.write(f"{clip.blob}\n".encode())
                process.stdin.flush()
                header = process.stdout.readline().split()
                if len(header) != 3 or header[1] != b"blob":
                    raise SourceError(f"{clip.repository}: blob {clip.blob} of {clip.repo_path} is missing")
                data = process.stdout.read(int(header[2]))
                process.stdout.read(1)  # the newline after each object
                yield path, data
        finally:
            process.stdin.close()
            process.wait()


def git_blob_id(data: bytes) -> str:
    """The id git gives a file with these bytes (``git hash-object``)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def blob_ids_under(folder: Path) -> frozenset[str]:
    """Git blob ids of every audio file under ``folder``: a clip with one of them is a copy of it,
    whichever repository it comes from (used to keep external-dev's files out of training)."""
    if not folder.is_dir():
        return frozenset()
    files = (path for path in folder.rglob("*") if path.is_file() and path.suffix.lower() in AUDIO_SUFFIXES)
    return frozenset(git_blob_id(path.read_bytes()) for path in files)


def audio_seconds(path: Path) -> float | None:
    """Duration of an audio file from its header, None if libsndfile cannot read it."""
    try:
        info = soundfile.info(str(path))
    except (RuntimeError, soundfile.LibsndfileError):
        return None
    return info.frames / info.samplerate if info.samplerate else None


@dataclass(frozen=True)
class SourceSummary:
    """What one source contributes: counts per label, speakers, systems, families."""

    name: str
    repository: str
    licence: str
    available: bool
    bonafide_clips: int = 0
    spoof_clips: int = 0
    bonafide_s: float = 0.0
    spoof_s: float = 0.0
    unreadable: int = 0
    speakers: frozenset[str] = frozenset()
    systems: frozenset[str] = frozenset()
    families: frozenset[str] = frozenset()
    conditions: frozenset[str] = frozenset()
    languages: frozenset[str] = frozenset()
    count_mismatches: tuple[str, ...] = ()


def summarise(source: Source, store: SnapshotStore, measure: bool = True) -> SourceSummary:
    """Count ``source``'s clips (extracting them to measure seconds when ``measure``)."""
    if not store.available(source):
        return SourceSummary(source.name, source.repository, source.licence, available=False)
    clips = store.clips(source)
    seconds: list[float | None] = [None] * len(clips)
    if measure:
        seconds = [audio_seconds(path) for path in store.extract(clips)]
    mismatches = []
    for index, source_set in enumerate(source.sets):
        found = sum(1 for clip in clips if clip.set_index == index)
        if source_set.files is not None and found != source_set.files:
            mismatches.append(f"set {index + 1} ({source_set.glob}): {found} files, catalogue says {source_set.files}")
    bonafide = [i for i, clip in enumerate(clips) if clip.label == "bonafide"]
    spoof = [i for i, clip in enumerate(clips) if clip.label == "spoof"]
    return SourceSummary(
        name=source.name,
        repository=source.repository,
        licence=source.licence,
        available=True,
        bonafide_clips=len(bonafide),
        spoof_clips=len(spoof),
        bonafide_s=sum(seconds[i] or 0.0 for i in bonafide),
        spoof_s=sum(seconds[i] or 0.0 for i in spoof),
        unreadable=sum(1 for s in seconds if s is None) if measure else 0,
        speakers=frozenset(clips[i].speaker_key for i in bonafide),
        systems=frozenset(clip.system for clip in clips if clip.label == "spoof"),
        families=frozenset(clip.family for clip in clips if clip.family),
        conditions=frozenset(clip.condition for clip in clips),
        languages=frozenset(clip.language for clip in clips),
        count_mismatches=tuple(mismatches),
    )


def summary_markdown(summaries: Sequence[SourceSummary]) -> str:
    """The catalogue as a Markdown table, with totals (distinct speakers, systems, families...)."""
    lines = [
        "| source | repository | licence | real clips | real min | fake clips | fake min | speakers | systems "
        "| families |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for s in summaries:
        if not s.available:
            lines.append(f"| {s.name} | {s.repository} | {s.licence} | – | – | – | – | – | – | no snapshot |")
            continue
        lines.append(
            f"| {s.name} | {s.repository} | {s.licence} | {s.bonafide_clips} | {s.bonafide_s / 60:.1f} | "
            f"{s.spoof_clips} | {s.spoof_s / 60:.1f} | {len(s.speakers)} | {len(s.systems)} | "
            f"{', '.join(sorted(s.families))} |"
        )
    present = [s for s in summaries if s.available]
    union = lambda attr: frozenset().union(*(getattr(s, attr) for s in present))  # noqa: E731
    lines += [
        "",
        f"Sources: {len(present)} of {len(summaries)} with a snapshot. "
        f"Real: {sum(s.bonafide_clips for s in present)} clips, {sum(s.bonafide_s for s in present) / 3600:.2f} h, "
        f"{len(union('speakers'))} speakers. "
        f"Fake: {sum(s.spoof_clips for s in present)} clips, {sum(s.spoof_s for s in present) / 3600:.2f} h, "
        f"{len(union('systems'))} systems.",
        f"Families ({len(union('families'))}): {', '.join(sorted(union('families')))}.",
        f"Conditions ({len(union('conditions'))}): {', '.join(sorted(union('conditions')))}.",
        f"Languages: {', '.join(sorted(union('languages')))}. "
        f"Licences: {', '.join(sorted({s.licence for s in present}))}.",
    ]
    unreadable = sum(s.unreadable for s in present)
    if unreadable:
        lines.append(f"Unreadable by libsndfile (decoded by ffmpeg at build time, or skipped): {unreadable} files.")
    for s in present:
        lines += [f"- {s.name}: {problem}" for problem in s.count_mismatches]
    return "\n".join(lines)


def system_key(system: str) -> str:
    """A system's identity across pages: case, spaces and punctuation do not make another system."""
    return re.sub(r"[^a-z0-9]+", "", system.lower())


def assign_splits(
    sources: Sequence[Source],
    clip_counts: dict[str, int],
    seed: int,
    dev_fraction: float,
    test_fraction: float,
) -> dict[str, str]:
    """A split for every source such that no fake system is in two splits.

    Sources that share a system (by :func:`system_key`) form one group, and a group goes to one
    split: a page's real and fake clips stay together, and dev and test hold only systems that
    training never saw. A source's fixed ``split`` takes its whole group along (two different fixed
    splits in one group are an error). The other groups are taken in a seeded order and fill dev,
    then test, up to their share of ``clip_counts`` (clips per source name); the rest is train.
    """
    parent = {source.name: source.name for source in sources}

    def find(name: str) -> str:
        while parent[name] != name:
            parent[name] = parent[parent[name]]
            name = parent[name]
        return name

    owner_of_system: dict[str, str] = {}
    for source in sources:
        for source_set in source.sets:
            if source_set.label != "spoof":
                continue
            key = system_key(source_set.system)
            if key in owner_of_system:
                parent[find(source.name)] = find(owner_of_system[key])
            else:
                owner_of_system[key] = source.name
    groups: dict[str, list[Source]] = defaultdict(list)
    for source in sources:
        groups[find(source.name)].append(source)
    splits: dict[str, str] = {}
    free: list[list[Source]] = []
    for members in groups.values():
        fixed = {source.split for source in members if source.split}
        if len(fixed) > 1:
            names = ", ".join(f"{source.name} ({source.split})" for source in members if source.split)
            raise SourceError(f"sources that share a fake system are fixed to different splits: {names}")
        if fixed:
            (split,) = fixed
            splits.update((source.name, split) for source in members)
        else:
            free.append(members)
    total = sum(clip_counts.get(source.name, 0) for source in sources)
    free.sort(key=lambda members: stable_int(seed, "source-group", min(source.name for source in members)))
    filled = {"dev": 0, "test": 0}
    for split in ("dev", "test"):
        filled[split] = sum(clip_counts.get(name, 0) for name, where in splits.items() if where == split)
    targets = {"dev": dev_fraction * total, "test": test_fraction * total}
    for members in free:
        size = sum(clip_counts.get(source.name, 0) for source in members)
        split = next((s for s in ("dev", "test") if filled[s] + size / 2 <= targets[s]), "train")
        if split != "train":
            filled[split] += size
        splits.update((source.name, split) for source in members)
    return splits


@dataclass(frozen=True)
class CatalogueClips:
    """The clips a build takes from a catalogue, and what it left out and why."""

    clips: list[SourceClip]
    #: Sources without a snapshot here (their names).
    unavailable: list[str]
    #: Clips dropped because their bytes are also in an excluded folder (external-dev).
    excluded_copies: int
    #: Clips dropped because an earlier source (catalogue order) holds the same bytes.
    duplicates: int
    #: Clips left out by the per-set cap.
    capped: int
    #: Clips per source under the fake sets' cap alone (``max_clips_per_set`` for every set):
    #: splits are assigned from these, so raising the real sets' cap moves no source.
    split_counts: dict[str, int]


def collect_clips(
    sources: Sequence[Source],
    store: SnapshotStore,
    *,
    seed: int,
    max_clips_per_set: int | None = None,
    max_real_clips_per_set: int | None = None,
    excluded_blobs: frozenset[str] = frozenset(),
) -> CatalogueClips:
    """Every usable clip of the catalogue, each file once.

    A clip whose bytes (git blob id) are in ``excluded_blobs`` is dropped, and so is a clip whose
    bytes an earlier source already gave (demo pages copy each other's samples: a copy must not
    land in two splits). ``max_clips_per_set`` keeps a seeded choice of that many files of a set;
    ``max_real_clips_per_set`` (default: the same) replaces it for bonafide sets. Both take the
    head of one seeded order, so a larger cap keeps every file of a smaller one.
    """
    seen: set[str] = set()
    clips: list[SourceClip] = []
    unavailable: list[str] = []
    split_counts: dict[str, int] = defaultdict(int)
    excluded = duplicates = capped = 0
    real_cap = max_clips_per_set if max_real_clips_per_set is None else max_real_clips_per_set
    for source in sources:
        if not store.available(source):
            unavailable.append(source.name)
            continue
        by_set: dict[int, list[SourceClip]] = defaultdict(list)
        for clip in store.clips(source):
            if clip.blob in excluded_blobs:
                excluded += 1
            elif clip.blob in seen:
                duplicates += 1
            else:
                seen.add(clip.blob)
                by_set[clip.set_index].append(clip)
        for index in sorted(by_set):
            members = by_set[index]
            cap = real_cap if members[0].label == "bonafide" else max_clips_per_set
            split_counts[source.name] += min(len(members), max_clips_per_set or len(members))
            if cap is not None and len(members) > cap:
                order = sorted(members, key=lambda clip: stable_int(seed, "source-clip", clip.blob))
                capped += len(members) - cap
                members = sorted(order[:cap], key=lambda clip: clip.repo_path)
            clips += members
    return CatalogueClips(clips, unavailable, excluded, duplicates, capped, dict(split_counts))
