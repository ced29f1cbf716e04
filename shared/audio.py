"""The one audio value type of vcfad and its loader.

Every part of vcfad (detector, cloner, data builder, services) passes speech around as an
:class:`Audio`: mono float32 samples in [-1, 1] plus their sample rate. Operations return a new
value, so calls chain::

    audio = load_audio("clip.mp3").resample(16_000).trim_silence().normalize_loudness()

:func:`load_audio` reads any :data:`AudioFile` (path, bytes or binary file object; WAV, FLAC,
MP3, OGG; a path ending in ``.g722`` through ffmpeg) and applies a :class:`LoadPolicy` (target
rate, trimming, loudness, duration limits).
Bad input raises a subclass of :class:`AudioError` whose message names what is wrong.
"""

from __future__ import annotations

import io
import re
import shutil
import struct
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TypeAlias

import numpy as np
import soundfile as sf
import soxr

Seconds: TypeAlias = float
Hertz: TypeAlias = int
Decibels: TypeAlias = float

#: Anything :func:`load_audio` accepts: a path, the encoded bytes, or a binary file object.
AudioFile: TypeAlias = str | Path | bytes | BinaryIO

MODEL_SAMPLE_RATE_HZ: Hertz = 16_000

#: File suffixes that :func:`load_audio` reads from a folder: soundfile's formats, and G.722
#: (decoded through ffmpeg, as telephony prompts ship).
READABLE_SUFFIXES = frozenset({".wav", ".flac", ".mp3", ".ogg", ".opus", ".g722"})


def audio_files(root: Path) -> list[Path]:
    """Every file under ``root`` (recursively, sorted) whose suffix :func:`load_audio` reads."""
    return sorted(path for path in Path(root).rglob("*") if path.suffix.lower() in READABLE_SUFFIXES and path.is_file())


def frame_levels_db(
    samples: np.ndarray, frame_len: int, hop_len: int | None = None, floor_power: float = 1e-20
) -> np.ndarray:
    """Level of each frame in dB (10·log10 of its mean power, at least ``floor_power``).

    Frames of ``frame_len`` samples every ``hop_len`` (default: back to back); a trailing partial
    frame is dropped, so a signal shorter than one frame gives an empty array.
    """
    samples = np.asarray(samples, dtype=np.float64)
    if len(samples) < frame_len:
        return np.empty(0)
    frames = np.lib.stride_tricks.sliding_window_view(samples, frame_len)[:: hop_len or frame_len]
    return 10.0 * np.log10(np.maximum(np.mean(frames**2, axis=1), floor_power))


class AudioError(ValueError):
    """Audio input that vcfad cannot use; the message says why, for the user."""


class UnreadableAudioError(AudioError):
    """Not audio, an unsupported container, or a corrupt file."""


class SilentAudioError(AudioError):
    """No samples, or no signal above the silence floor."""


class AudioTooShortError(AudioError):
    """Less speech than the configured minimum."""


class AudioTooLongError(AudioError):
    """Longer than the configured maximum."""


@dataclass(frozen=True, slots=True)
class Audio:
    """Mono speech: float32 ``samples`` in [-1, 1] at ``sample_rate_hz``."""

    samples: np.ndarray
    sample_rate_hz: Hertz

    def __post_init__(self) -> None:
        samples = np.asarray(self.samples, dtype=np.float32)
        if samples.ndim != 1:
            raise ValueError(f"Audio holds mono samples (1-D); got shape {samples.shape}")
        if self.sample_rate_hz <= 0:
            raise ValueError(f"sample_rate_hz must be positive; got {self.sample_rate_hz}")
        object.__setattr__(self, "samples", samples)

    # -- properties -------------------------------------------------------------------------
    @property
    def duration_s(self) -> Seconds:
        return len(self.samples) / self.sample_rate_hz

    @property
    def num_samples(self) -> int:
        return len(self.samples)

    def rms_dbfs(self) -> Decibels:
        """Root-mean-square level in dB relative to full scale (−inf for digital silence)."""
        if self.num_samples == 0:
            return float("-inf")
        rms = float(np.sqrt(np.mean(np.square(self.samples, dtype=np.float64))))
        return 20.0 * np.log10(rms) if rms > 0 else float("-inf")

    # -- transforms (each returns a new Audio) ------------------------------------------------
    def resample(self, sample_rate_hz: Hertz) -> Audio:
        if sample_rate_hz == self.sample_rate_hz or self.num_samples == 0:
            return Audio(self.samples, sample_rate_hz)
        resampled = soxr.resample(self.samples, self.sample_rate_hz, sample_rate_hz, quality="HQ")
        return Audio(resampled.astype(np.float32), sample_rate_hz)

    def trim_silence(self, top_db: Decibels = 40.0, frame_s: Seconds = 0.025) -> Audio:
        """Drop leading and trailing frames quieter than ``top_db`` below the loudest frame."""
        start, end = self._active_span(top_db, frame_s)
        return Audio(self.samples[start:end], self.sample_rate_hz)

    def normalize_loudness(self, target_dbfs: Decibels = -23.0, peak_limit: float = 0.99) -> Audio:
        """Scale so the active (non-silent) part sits at ``target_dbfs`` RMS, without clipping.

        Measured on active frames only, so a clip with long pauses is not boosted more than a
        dense one: both classes of the detector are normalised the same way.
        """
        active = self._active_samples()
        if active.size == 0:
            return self
        rms = float(np.sqrt(np.mean(np.square(active, dtype=np.float64))))
        if rms <= 0:
            return self
        gain = 10.0 ** (target_dbfs / 20.0) / rms
        peak = float(np.max(np.abs(self.samples))) * gain
        if peak > peak_limit:
            gain *= peak_limit / peak
        return Audio(self.samples * np.float32(gain), self.sample_rate_hz)

    def crop(self, start_s: Seconds, duration_s: Seconds) -> Audio:
        start = max(0, round(start_s * self.sample_rate_hz))
        stop = start + round(duration_s * self.sample_rate_hz)
        return Audio(self.samples[start:stop], self.sample_rate_hz)

    def pad_to(self, duration_s: Seconds) -> Audio:
        """Zero-pad at the end up to ``duration_s`` (never shortens)."""
        missing = round(duration_s * self.sample_rate_hz) - self.num_samples
        if missing <= 0:
            return self
        return Audio(np.pad(self.samples, (0, missing)), self.sample_rate_hz)

    def concat(self, *others: Audio, gap_s: Seconds = 0.0) -> Audio:
        """Join clips (resampled to this rate) with ``gap_s`` of silence between them."""
        gap = np.zeros(round(gap_s * self.sample_rate_hz), dtype=np.float32)
        parts = [self.samples]
        for other in others:
            parts += [gap, other.resample(self.sample_rate_hz).samples]
        return Audio(np.concatenate(parts), self.sample_rate_hz)

    def windows(self, window_s: Seconds, hop_s: Seconds) -> Iterator[tuple[Seconds, Audio]]:
        """Yield ``(start_s, window)``; the last window is kept if at least half full."""
        window = round(window_s * self.sample_rate_hz)
        hop = round(hop_s * self.sample_rate_hz)
        if self.num_samples <= window:
            yield 0.0, self
            return
        for start in range(0, self.num_samples - window // 2, hop):
            yield start / self.sample_rate_hz, Audio(self.samples[start : start + window], self.sample_rate_hz)
            if start + window >= self.num_samples:
                return

    # -- output ---------------------------------------------------------------------------------
    def write(self, path: str | Path, subtype: str = "PCM_16") -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, np.clip(self.samples, -1.0, 1.0), self.sample_rate_hz, subtype=subtype)
        return path

    def to_wav_bytes(self, subtype: str = "PCM_16") -> bytes:
        buffer = io.BytesIO()
        sf.write(buffer, np.clip(self.samples, -1.0, 1.0), self.sample_rate_hz, format="WAV", subtype=subtype)
        return buffer.getvalue()

    # -- helpers ----------------------------------------------------------------------------------
    def _frame_db(self, frame_s: Seconds) -> tuple[np.ndarray, int]:
        frame = max(1, round(frame_s * self.sample_rate_hz))
        if self.num_samples < frame:
            return np.array([self.rms_dbfs()]), max(frame, self.num_samples)
        return frame_levels_db(self.samples, frame), frame

    def _active_span(self, top_db: Decibels, frame_s: Seconds) -> tuple[int, int]:
        if self.num_samples == 0:
            return 0, 0
        frame_db, frame = self._frame_db(frame_s)
        active = np.flatnonzero(frame_db > frame_db.max() - top_db)
        start = int(active[0]) * frame
        end = min(self.num_samples, (int(active[-1]) + 1) * frame)
        return start, end

    def _active_samples(self, top_db: Decibels = 40.0, frame_s: Seconds = 0.025) -> np.ndarray:
        frame_db, frame = self._frame_db(frame_s)
        count = len(frame_db)
        if count * frame > self.num_samples:  # shorter than one frame
            return self.samples
        frames = self.samples[: count * frame].reshape(count, frame)
        return frames[frame_db > frame_db.max() - top_db].reshape(-1)


@dataclass(frozen=True, slots=True)
class LoadPolicy:
    """How :func:`load_audio` prepares input; one policy is shared by training and serving."""

    sample_rate_hz: Hertz = MODEL_SAMPLE_RATE_HZ
    trim_silence: bool = True
    trim_top_db: Decibels = 40.0
    normalize_loudness: bool = True
    target_dbfs: Decibels = -23.0
    #: Below this RMS level (dBFS) the whole clip counts as silence.
    silence_floor_dbfs: Decibels = -60.0
    min_duration_s: Seconds = 0.5
    max_duration_s: Seconds = 600.0


def _describe(source: AudioFile) -> str:
    if isinstance(source, str | Path):
        return str(source)
    return getattr(source, "name", None) or "uploaded audio"


def _g722_to_wav(path: Path) -> io.BytesIO:
    """G.722 (headerless, as telephony prompts ship) decoded by ffmpeg to 16 kHz WAV."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise UnreadableAudioError(f"{path}: G.722 needs ffmpeg to decode, and ffmpeg is not installed")
    command = [ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-f", "g722", "-i", str(path)]
    done = subprocess.run([*command, "-f", "wav", "-acodec", "pcm_s16le", "-"], capture_output=True, check=False)
    if done.returncode != 0 or not done.stdout:
        reason = done.stderr.decode(errors="replace").strip() or f"ffmpeg exit code {done.returncode}"
        raise UnreadableAudioError(f"{path}: not a readable G.722 file: {reason}")
    return io.BytesIO(done.stdout)


#: Sample rates a header may declare; outside them the file is corrupt or hostile (a 4 GHz "rate"
#: would make the resampler allocate absurdly), so it is refused before any sample is decoded.
MIN_SAMPLE_RATE_HZ: Hertz = 1_000
MAX_SAMPLE_RATE_HZ: Hertz = 768_000
#: Samples (frames × channels) decoded at once: decoding is bounded by this, not by the file.
_BLOCK_SAMPLES = 1 << 20


def _wav_header_problem(data: bytes) -> str | None:
    """What is wrong with a RIFF/WAVE header's format chunk, in words (libsndfile only says
    "SF_INFO struct incomplete" for a zero or absurd rate); None if nothing we can name."""
    if len(data) < 12 or data[:4] not in (b"RIFF", b"RIFX") or data[8:12] != b"WAVE":
        return None
    order = "<" if data[:4] == b"RIFF" else ">"
    offset = 12
    while offset + 8 <= len(data):
        chunk_id = data[offset : offset + 4]
        (size,) = struct.unpack_from(f"{order}I", data, offset + 4)
        if chunk_id == b"fmt ":
            if offset + 16 > len(data) or size < 8:
                return "its WAV header is cut short (incomplete format chunk)"
            channels, sample_rate_hz = struct.unpack_from(f"{order}HI", data, offset + 10)
            if channels == 0:
                return "its WAV header declares 0 channels"
            if not MIN_SAMPLE_RATE_HZ <= sample_rate_hz <= MAX_SAMPLE_RATE_HZ:
                return (
                    f"its WAV header declares a sample rate of {sample_rate_hz} Hz; "
                    f"{MIN_SAMPLE_RATE_HZ}–{MAX_SAMPLE_RATE_HZ} Hz is supported"
                )
            return None
        offset += 8 + size + (size & 1)
    return "its WAV header has no format chunk (cut short?)"


def _open(source: AudioFile, name: str) -> sf.SoundFile:
    """Open ``source`` for block-wise reading; only its header is parsed here."""
    opened: str | BinaryIO
    if isinstance(source, str | Path):
        path = Path(source)
        if not path.exists():
            raise UnreadableAudioError(f"{name}: no such file")
        if path.is_dir():
            raise UnreadableAudioError(f"{name}: is a folder, not an audio file")
        opened = _g722_to_wav(path) if path.suffix.lower() == ".g722" else str(path)
    elif isinstance(source, bytes | bytearray):
        if not source:
            raise SilentAudioError(f"{name}: the upload is empty (0 bytes)")
        opened = io.BytesIO(source)
    else:
        opened = source
    try:
        return sf.SoundFile(opened)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as error:
        # libsndfile's reason without its "Error opening <_io.BytesIO object at 0x…>: " prefix,
        # or our own where libsndfile's says nothing useful.
        reason = re.sub(r"^Error opening .*?: ", "", str(error))
        if isinstance(source, bytes | bytearray):
            reason = _wav_header_problem(bytes(source[:4096])) or reason
        raise UnreadableAudioError(
            f"{name}: not a readable audio file (WAV, FLAC, MP3 or OGG expected): {reason}"
        ) from None


def _mono_blocks(sound: sf.SoundFile, name: str, max_duration_s: Seconds | None) -> Iterator[np.ndarray]:
    """Mono float32 blocks of ``sound``, refusing a bad header, bad samples or too much audio early.

    The header's rate, channels and length are checked before decoding; the length is checked
    again while decoding (a header may lie, or not know it), so at most ``max_duration_s`` of
    audio is ever decoded, whatever the file claims or holds.
    """
    sample_rate_hz, channels = sound.samplerate, sound.channels
    if not MIN_SAMPLE_RATE_HZ <= sample_rate_hz <= MAX_SAMPLE_RATE_HZ:
        raise UnreadableAudioError(
            f"{name}: its header declares a sample rate of {sample_rate_hz} Hz; "
            f"{MIN_SAMPLE_RATE_HZ}–{MAX_SAMPLE_RATE_HZ} Hz is supported (corrupt file?)"
        )
    if channels < 1:
        raise UnreadableAudioError(f"{name}: its header declares {channels} channels (corrupt file)")
    max_frames = None if max_duration_s is None else int(max_duration_s * sample_rate_hz)
    too_long = f"{name}: longer than the maximum of {max_duration_s or 0:g} s"
    if max_frames is not None and sound.frames > max_frames:
        raise AudioTooLongError(f"{too_long} (its header declares {sound.frames / sample_rate_hz:.1f} s)")
    block_frames = max(1, _BLOCK_SAMPLES // channels)
    frames = 0
    while True:
        try:
            block = sound.read(block_frames, dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError, ValueError) as error:
            raise UnreadableAudioError(f"{name}: corrupt audio data: {error}") from None
        if len(block) == 0:
            return
        if not np.all(np.isfinite(block)):
            raise UnreadableAudioError(f"{name}: the audio holds NaN or infinite samples (corrupt file)")
        frames += len(block)
        if max_frames is not None and frames > max_frames:
            raise AudioTooLongError(too_long)
        yield block.mean(axis=1)


def decode_audio(source: AudioFile, max_duration_s: Seconds | None = None) -> Audio:
    """Decode ``source`` to mono float32 at its own sample rate (no other processing).

    Parameters
    ----------
    source
        A path, encoded bytes, or a binary file object.
    max_duration_s
        Refuse (before decoding it all) audio longer than this; None: no limit.

    Raises
    ------
    UnreadableAudioError
        The file is missing, not audio, or corrupt (bad header, NaN or infinite samples).
    AudioTooLongError
        Longer than ``max_duration_s``.
    """
    name = _describe(source)
    with _open(source, name) as sound:
        sample_rate_hz = sound.samplerate
        blocks = list(_mono_blocks(sound, name, max_duration_s))
    samples = np.concatenate(blocks) if blocks else np.zeros(0, dtype=np.float32)
    return Audio(samples, int(sample_rate_hz))


def load_audio(source: AudioFile, policy: LoadPolicy | None = None) -> Audio:
    """Read ``source`` and prepare it by ``policy``: mono, resampled, trimmed, normalised.

    Memory stays bounded by the policy, not by the file: audio is decoded in blocks, each
    resampled to the policy's rate as it comes (bit-identical to resampling the whole clip at
    once), and decoding stops once it passes ``max_duration_s``.

    Parameters
    ----------
    source
        A path, encoded bytes, or a binary file object holding WAV, FLAC, MP3 or OGG.
    policy
        Target rate, trimming, loudness and duration limits; :class:`LoadPolicy` defaults if None.

    Raises
    ------
    UnreadableAudioError, SilentAudioError, AudioTooShortError, AudioTooLongError
        With a message naming the input and what is wrong with it.
    """
    policy = policy or LoadPolicy()
    name = _describe(source)
    parts: list[np.ndarray] = []
    frames, sum_squares = 0, 0.0
    with _open(source, name) as sound:
        resampler = None
        if sound.samplerate != policy.sample_rate_hz:
            resampler = soxr.ResampleStream(sound.samplerate, policy.sample_rate_hz, 1, dtype="float32", quality="HQ")
        for block in _mono_blocks(sound, name, policy.max_duration_s):
            frames += len(block)
            sum_squares += float(np.dot(block.astype(np.float64), block.astype(np.float64)))
            parts.append(resampler.resample_chunk(block, last=False) if resampler else block)
    if frames == 0:
        raise SilentAudioError(f"{name}: the file holds no samples")
    # Level of the decoded (not yet resampled) audio, as Audio.rms_dbfs measures it.
    rms = float(np.sqrt(sum_squares / frames))
    level_dbfs = 20.0 * np.log10(rms) if rms > 0 else float("-inf")
    if level_dbfs < policy.silence_floor_dbfs:
        raise SilentAudioError(
            f"{name}: the recording is silent (level {level_dbfs:.0f} dBFS, floor {policy.silence_floor_dbfs:g} dBFS)"
        )
    if resampler is not None:
        parts.append(resampler.resample_chunk(np.zeros(0, dtype=np.float32), last=True))
    audio = Audio(np.concatenate(parts), policy.sample_rate_hz)
    if policy.trim_silence:
        audio = audio.trim_silence(policy.trim_top_db)
    if audio.duration_s < policy.min_duration_s:
        raise AudioTooShortError(
            f"{name}: {audio.duration_s:.2f} s of sound after trimming silence; "
            f"at least {policy.min_duration_s:g} s is needed"
        )
    if policy.normalize_loudness:
        audio = audio.normalize_loudness(policy.target_dbfs)
    return audio
