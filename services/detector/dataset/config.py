"""The dataset build configuration: a TOML file validated by pydantic.

Relative paths of real corpora resolve against ``data_root`` (``../shared/data`` from the repo
root, or ``VCFAD_SHARED_DATA``); ``output_dir`` resolves against the repo root.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from shared.sources import snapshot_roots

REPO_ROOT = Path(__file__).resolve().parents[3]

Split = Literal["train", "dev", "test"]
#: Where a real source's speakers go: a fixed split, split by speaker, or the corpus's own split.
RealSplit = Literal["train", "dev", "test", "by-speaker", "native"]
#: Where a fake system's clips go: a fixed split, or (copy-synthesis, cloning) the source speaker's split.
SystemSplit = Literal["train", "dev", "test", "by-speaker"]
ReaderKind = Literal["shared-manifest", "librispeech", "commonvoice", "timit", "asvspoof2019", "folder"]
GeneratorKind = Literal[
    "espeak-ng", "flite", "festival", "pico", "rhvoice", "mbrola", "piper", "kokoro",
    "world-copy", "griffinlim-copy", "neural-vocoder-copy", "cloner",
]  # fmt: skip

#: The family of each generator kind (a column of the manifest).
FAMILIES: dict[str, str] = {
    "espeak-ng": "classical-tts",
    "flite": "classical-tts",
    "festival": "classical-tts",
    "pico": "classical-tts",
    "rhvoice": "classical-tts",
    "mbrola": "classical-tts",
    "piper": "neural-tts",
    "kokoro": "neural-tts",
    "world-copy": "signal-vocoder-copy",
    "griffinlim-copy": "signal-vocoder-copy",
    "neural-vocoder-copy": "neural-vocoder-copy",
    "cloner": "voice-clone",
}


class ConfigError(ValueError):
    """A build configuration that cannot be used; the message names the file and the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RealSource(_Strict):
    """One corpus of real (bonafide) speech."""

    name: str
    reader: ReaderKind
    #: The manifest file (shared-manifest) or the corpus root folder (others), relative to data_root.
    path: str
    #: shared-manifest and folder: keep recordings whose path (relative to the manifest's folder
    #: or to the folder) starts with this prefix, and drop those that start with any of ``exclude``.
    include: str = ""
    exclude: list[str] = Field(default_factory=list)
    #: folder only: the one speaker of every recording (default: the folder's name).
    speaker: str = ""
    #: Skip the source (with a warning) when its path does not exist, instead of failing: for
    #: corpora that an install step provides only where it can (a Debian package needs root).
    optional: bool = False
    split: RealSplit = "by-speaker"
    #: by-speaker: the share of speakers for dev and for test (the rest is train).
    dev_fraction: float = Field(default=0.2, ge=0.0, le=1.0)
    test_fraction: float = Field(default=0.0, ge=0.0, le=1.0)
    #: Use at most this many clips (after a seeded shuffle); None = all.
    max_clips: int | None = Field(default=None, ge=1)


class Windows(_Strict):
    """Durations of the clips (both classes draw from this one distribution)."""

    min_s: float = Field(default=1.0, gt=0.5)
    max_s: float = Field(default=6.0, gt=0.5)
    distribution: Literal["uniform", "log-uniform"] = "log-uniform"
    #: At most this many windows from one real recording.
    max_per_clip: int = Field(default=8, ge=1)
    #: Windows drawn per real recording = coverage × its length / the mean window length (capped
    #: by max_per_clip): how many windows, on average, hold each second of real speech. Windows
    #: are placed at random, so above 1 they overlap; the fakes follow the real count.
    coverage: float = Field(default=1.0, gt=0.0)

    @model_validator(mode="after")
    def _ordered(self) -> Windows:
        if self.max_s < self.min_s:
            raise ValueError(f"windows.max_s ({self.max_s}) must be at least windows.min_s ({self.min_s})")
        return self


class System(_Strict):
    """One fake generator."""

    name: str
    kind: GeneratorKind
    split: SystemSplit
    #: Share of the fakes of its split(s), relative to the other systems there.
    weight: float = Field(default=1.0, gt=0.0)
    #: Skip the system (with a warning) when its engine or model is missing, instead of failing.
    optional: bool = False
    #: Engine-specific settings (voices, variants, speed ranges, model path ...).
    options: dict[str, Any] = Field(default_factory=dict)


class Augment(_Strict):
    """The channel augmentation, applied with the same distribution to both classes."""

    #: Raise every clip's noise floor (5th percentile of 20 ms frame levels) to a level (dBFS)
    #: drawn from this range, with coloured noise; LibriSpeech's own floors after loudness
    #: normalisation lie around −69…−43 dBFS (10th–90th percentile), median −55. None: leave
    #: the floor as it is (an as-recorded build, :meth:`BuildConfig.as_recorded`).
    floor_dbfs: tuple[float, float] | None = (-58.0, -40.0)
    noise_p: float = Field(default=0.3, ge=0.0, le=1.0)
    noise_snr_db: tuple[float, float] = (5.0, 30.0)
    eq_p: float = Field(default=0.4, ge=0.0, le=1.0)
    reverb_p: float = Field(default=0.15, ge=0.0, le=1.0)
    resample_p: float = Field(default=0.15, ge=0.0, le=1.0)
    lowpass_p: float = Field(default=0.15, ge=0.0, le=1.0)
    telephone_p: float = Field(default=0.1, ge=0.0, le=1.0)
    codec_p: float = Field(default=0.3, ge=0.0, le=1.0)
    #: A non-linear, band-coloured channel (a cheap microphone or preamp: harmonic distortion or
    #: soft clipping, then signal-dependent clicks), the kind of channel real speech from
    #: consumer devices has and LibriSpeech rarely does (RawBoost, Tak et al., ICASSP 2022).
    distortion_p: float = Field(default=0.0, ge=0.0, le=1.0)
    #: A noise gate after the background noise (pauses muted to digital silence, word edges cut:
    #: edited prompts, podcasts, broadcast), which real speech gets in production and the model
    #: otherwise never sees (:func:`~services.detector.dataset.augment.noise_gate`).
    gate_p: float = Field(default=0.0, ge=0.0, le=1.0)
    #: Share of text-to-speech fakes that get the recording channel (long-term spectrum and room
    #: tone, :mod:`shared.channel`) of a random real recording of their split, before the rest of
    #: the augmentation: otherwise the real class alone carries its corpus's microphones and rooms,
    #: and a detector learns "sounds like LibriSpeech" (false alarms on every other channel).
    #: Clones carry their reference's channel already; copy-synthesis keeps its source's.
    channel_transfer_p: float = Field(default=0.0, ge=0.0, le=1.0)
    #: Codecs drawn from for a round trip (soundfile/libsndfile): mp3, ogg (Vorbis), opus.
    codecs: list[Literal["mp3", "ogg", "opus"]] = Field(default_factory=lambda: ["mp3", "ogg", "opus"])


class External(_Strict):
    """Speech from public repositories at pinned commits: the catalogue of
    :mod:`shared.sources`, read from local snapshots (docs/dataset.md,
    "External sources"). Real files join the real class and give fakes their donors; machine-made
    files become fake windows cut exactly as real windows are (kind ``recorded``)."""

    #: The catalogue (TOML), relative to the repo root.
    catalogue: str = "configs/detector/sources.toml"
    #: Folders searched for snapshots, relative to the repo root; ``VCFAD_SNAPSHOTS`` (paths
    #: separated by ``os.pathsep``) replaces them.
    snapshots: list[str] = Field(default_factory=lambda: ["../.mirror"])
    #: Where the files are extracted (relative to the repo root).
    cache_dir: str = "data/sources"
    #: Share of the catalogue's clips whose sources go to dev and to test (groups of sources that
    #: share a fake system move together: :func:`sources.assign_splits`).
    dev_fraction: float = Field(default=0.15, ge=0.0, le=1.0)
    test_fraction: float = Field(default=0.15, ge=0.0, le=1.0)
    #: A seeded choice of at most this many files per set (a big corpus must not drown the rest).
    max_clips_per_set: int | None = Field(default=80, ge=1)
    #: The same for bonafide sets (None: ``max_clips_per_set``). The splits are still assigned
    #: from the counts under ``max_clips_per_set``, so raising it adds real files without moving
    #: a source to another split.
    max_real_clips_per_set: int | None = Field(default=None, ge=1)
    #: Windows cut from one file at most (demo pages hold a few seconds a file; each file gives
    #: at least one window).
    max_windows_per_file: int = Field(default=2, ge=1)
    #: Folders (relative to data_root) whose files' byte copies are dropped (external-dev).
    exclude_copies_of: list[str] = Field(default_factory=lambda: ["external-dev"])
    #: Only these sources (names); empty: every source of the catalogue.
    only_sources: list[str] = Field(default_factory=list)
    #: Leave these sources (names) out: a source another build of the same corpus reads (the
    #: default build's voice prompts), so that no clip is in two builds.
    exclude_sources: list[str] = Field(default_factory=list)
    #: Leave these fake families out (a leave-one-family-out build).
    exclude_families: list[str] = Field(default_factory=list)
    #: Go on without external clips (a warning) when no source has a snapshot here; otherwise
    #: such a build stops with an error naming the folders searched.
    optional: bool = False

    def catalogue_path(self) -> Path:
        path = Path(self.catalogue)
        return path if path.is_absolute() else REPO_ROOT / path

    def snapshot_roots(self) -> list[Path]:
        return snapshot_roots(self.snapshots, REPO_ROOT)

    def cache_path(self) -> Path:
        path = Path(self.cache_dir)
        return path if path.is_absolute() else REPO_ROOT / path


class BuildConfig(_Strict):
    """A whole dataset build (see docs/dataset.md)."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    seed: int = 0
    data_root: str = "../shared/data"
    output_dir: str = ""
    #: VCTK sentence table (speaker, wav_file, transcript) read by the TTS fakes, relative to data_root.
    text_csv: str = "text/vctk_transcripts.csv"
    #: Fakes per real window in each split (1.0 = balanced classes).
    fakes_per_real: float = Field(default=1.0, gt=0.0)
    #: How fakes that start from a real recording of their split (copy-synthesis, a clone's
    #: reference, channel transfer) draw it: each recording alike ("recording"), or in proportion
    #: to its seconds of speech ("seconds"), so that a corpus of many short files (telephony
    #: prompts, Common Voice) gives the fakes the share it gives the real class, not its file share.
    fake_sources_by: Literal["recording", "seconds"] = "recording"
    #: Cap on the real windows of each split (None = all the windows the recordings give).
    max_real_windows: dict[Split, int] = Field(default_factory=dict)
    windows: Windows = Field(default_factory=Windows)
    augment: Augment = Field(default_factory=Augment)
    real: list[RealSource]
    systems: list[System]
    external: External | None = None
    probe: bool = True

    @model_validator(mode="after")
    def _unique(self) -> BuildConfig:
        names = [system.name for system in self.systems]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"systems: duplicate system name(s) {', '.join(duplicates)}")
        return self

    # -- resolved paths -----------------------------------------------------------------------
    def as_recorded(self) -> BuildConfig:
        """The same plan with no channel transfer and no augmentation: every window as recorded
        or synthesized (after the loader's loudness normalisation and trimming, as served)."""
        # Every step's probability (any later one too) to 0, and no floor.
        off = {name: 0.0 for name in Augment.model_fields if name.endswith("_p")}
        none = Augment(floor_dbfs=None, **off)
        return self.model_copy(update={"augment": none})

    def data_root_path(self) -> Path:
        override = os.environ.get("VCFAD_SHARED_DATA")
        root = Path(override) if override else Path(os.path.expanduser(self.data_root))
        return root if root.is_absolute() else (REPO_ROOT / root).resolve()

    def resolve_data(self, path: str) -> Path:
        candidate = Path(os.path.expanduser(os.path.expandvars(path)))
        return candidate if candidate.is_absolute() else self.data_root_path() / candidate

    def output_path(self) -> Path:
        out = Path(self.output_dir) if self.output_dir else Path("data") / "detector" / self.name
        return out if out.is_absolute() else REPO_ROOT / out


def _format_error(source: str, error: ValidationError) -> str:
    problems = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "(top level)"
        problems.append(f"{where}: {item['msg']}")
    return f"{source}: invalid dataset config: " + "; ".join(problems)


def parse_config(data: dict[str, Any], source: str = "config") -> BuildConfig:
    """Validate a parsed TOML table; :class:`ConfigError` names every bad field."""
    try:
        return BuildConfig.model_validate(data)
    except ValidationError as error:
        raise ConfigError(_format_error(source, error)) from None


def load_config(path: str | Path) -> BuildConfig:
    """Read and validate a build configuration TOML file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None
    return parse_config(data, source=str(path))
