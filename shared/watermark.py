"""Keyed, inaudible provenance watermark for speech: embedded in every clone, read by the detector.

A keyed spread-spectrum pattern in the STFT magnitude: the telephone band (300–3400 Hz) is cut
into cells (:class:`WatermarkParams`: 20 ms × ~65 Hz) tiled with a 1 s period, and each cell's
magnitude is raised or lowered by a few dB, the sign drawn from the key. 60 % of the cells carry a
known *sync* pattern (presence and alignment); the rest spread the 64 bits of the 16-bit job
hash's codeword in an extended BCH code ([64, 16, 24], :mod:`shared.bch`; the 24-bit payload is
the key's id, implied by the key that finds the mark, then the job hash). A payload cell's sign is
also bound to the audio it sits in (the sign of a keyed projection of how the spectrum around it
moves in time), so a payload copied from a clone onto other speech does not read there. A gain on
the speech's own spectrum adds nothing where there is no sound and is masked by the speech where
there is.

Detection works on any 1 s window: log-magnitude STFT at 8 kHz, cell means, each cell minus its
neighbours (removes the speech's own slowly varying envelope), then the normalised correlation
with the sync pattern, searched over all offsets within the period and a grid of speed factors
(a ±10 % speed change scales time and frequency) and of tempo factors (a pitch-preserving tempo
change scales time only). Under no watermark (or another key) the key's
signs are independent of the audio, so each correlation is a weighted sum of random signs, whose
tail is bounded (Hoeffding; Bentkus–Dzindzalieta) and the thresholds follow from the number of
tests, not from tuning data (docs/watermark.md): the mark is present in a recording when its best
window passes the union bound over all the recording's windows and tests, and the windows that
pass one window's bound are then its extent.

::

    key = WatermarkKey.from_settings()
    marked = Watermarker(key).embed(audio, payload=make_payload(key, "job-42"))
    found = Watermarker(key).detect(marked)       # WatermarkReport: present, windows, payload
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import math
import os
import secrets
import tempfile
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict
from scipy import signal
from scipy.special import ndtr, ndtri

from shared.audio import Audio, Hertz, Seconds
from shared.bch import ExtendedBCHCode
from shared.schemas import WatermarkResult, WatermarkWindow

logger = logging.getLogger(__name__)


class WatermarkKeyError(ValueError):
    """A watermark key that is missing, unreadable or malformed; the message says which and where."""


class WatermarkSettings(BaseSettings):
    """Where the watermark key comes from (environment prefix ``VCFAD_WATERMARK_``).

    ``VCFAD_WATERMARK_KEY`` (hex or base64, ≥ 16 bytes) wins; otherwise the key is read from
    ``key_file``, which is created with a fresh random key (mode 0600) when absent and
    ``create_key`` is on, so a fresh checkout clones and detects offline; ``make up`` creates it too.
    """

    model_config = SettingsConfigDict(env_prefix="VCFAD_WATERMARK_", extra="ignore")

    key: SecretStr | None = None
    key_file: Path = Path("var/watermark.key")
    create_key: bool = True
    #: Detection's search: speed changes (time and pitch) and pitch-preserving tempo changes up to
    #: these fractions are searched; 0 turns one off. Together they are most of a reading's cost
    #: (docs/watermark.md, "Cost"); fewer tests also lower the threshold by the same bound.
    max_speed_change: float = Field(default=0.12, ge=0.0, le=0.3)
    max_tempo_change: float = Field(default=0.12, ge=0.0, le=0.3)


def _decode_key(text: str, origin: str) -> bytes:
    text = text.strip()
    try:
        secret = bytes.fromhex(text)
    except ValueError:
        try:
            secret = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise WatermarkKeyError(f"{origin}: the watermark key is neither hex nor base64") from None
    if len(secret) < 16:
        raise WatermarkKeyError(f"{origin}: the watermark key holds {len(secret)} bytes; at least 16 are needed")
    return secret


@dataclass(frozen=True)
class WatermarkKey:
    """The secret the patterns are drawn from. Without it nothing can be read or forged."""

    secret: bytes = field(repr=False)

    @property
    def key_id(self) -> int:
        """An 8-bit public id of the key (carried in the payload: which key marked a clip)."""
        return hashlib.sha256(b"vcfad-watermark-key-id" + self.secret).digest()[0]

    def seed(self, purpose: str) -> int:
        """A 64-bit random seed derived from the secret for ``purpose`` (e.g. ``"pattern"``)."""
        return int.from_bytes(hashlib.sha256(purpose.encode() + b"\x00" + self.secret).digest()[:8], "little")

    @classmethod
    def generate(cls) -> WatermarkKey:
        return cls(secrets.token_bytes(32))

    @classmethod
    def from_text(cls, text: str, origin: str = "watermark key") -> WatermarkKey:
        """A key from its hex or base64 text (as in ``VCFAD_WATERMARK_KEY`` or the key file)."""
        return cls(_decode_key(text, origin))

    @classmethod
    def from_settings(cls, settings: WatermarkSettings | None = None) -> WatermarkKey:
        """The configured key: ``VCFAD_WATERMARK_KEY``, else the key file (created when absent).

        Raises
        ------
        WatermarkKeyError
            Malformed key, or no key file while ``create_key`` is off.
        """
        settings = settings or WatermarkSettings()
        if settings.key is not None:
            return cls.from_text(settings.key.get_secret_value(), "VCFAD_WATERMARK_KEY")
        path = settings.key_file
        if not path.exists():
            if not settings.create_key:
                raise WatermarkKeyError(f"{path}: no watermark key (set VCFAD_WATERMARK_KEY or run `make up`)")
            _create_key_file(path)
        try:
            return cls.from_text(path.read_text(), str(path))
        except OSError as error:
            raise WatermarkKeyError(f"{path}: cannot read the watermark key: {error.strerror}") from None


def _create_key_file(path: Path) -> None:
    """Write a fresh key readable by this user only; a concurrent creator's key wins.

    The key is written to a private temporary file and hard-linked into place, so a process that
    starts at the same moment never reads a half-written (empty) key file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".watermark-key-")
    try:
        with os.fdopen(handle, "w") as file:  # mkstemp creates it with mode 0600
            file.write(WatermarkKey.generate().secret.hex() + "\n")
        os.link(temporary, path)
        logger.info("created a new watermark key in %s", path)
    except FileExistsError:
        pass
    finally:
        os.unlink(temporary)


#: The optimal constant c in P(Σ aᵢεᵢ ≥ x) ≤ c·P(η ≥ x) for random signs εᵢ, Σ aᵢ² ≤ 1 and a
#: standard normal η: c = 1 / (4·P(η ≥ √2)) ≈ 3.178 (Bentkus & Dzindzalieta, "A tight Gaussian
#: bound for weighted sums of Rademacher random variables", Bernoulli 21(2), 2015, 1231–1237).
BENTKUS_DZINDZALIETA_C = 1.0 / (4.0 * float(ndtr(-math.sqrt(2.0))))


def rademacher_tail_bound(z: float) -> float:
    """Upper bound on P(Σ aᵢεᵢ ≥ z) for independent random signs εᵢ and Σ aᵢ² ≤ 1.

    The smaller of Hoeffding's exp(−z²/2) and Bentkus–Dzindzalieta's c·P(η ≥ z) (η standard
    normal; c ≈ 3.178), both theorems; the second is the tighter one in the tail the detector's
    threshold lives in (z ≈ 5.6: by a factor of about 5), so the same proven false-positive rate
    comes at a lower threshold.
    """
    return min(1.0, math.exp(-(max(z, 0.0) ** 2) / 2.0), BENTKUS_DZINDZALIETA_C * float(ndtr(-z)))


def union_threshold_z(false_rate: float, tests: int) -> float:
    """The smallest u at which ``tests`` × :func:`rademacher_tail_bound` (u) is ``false_rate``."""
    per_test = false_rate / tests
    hoeffding = math.sqrt(-2.0 * math.log(per_test))
    gaussian = float(-ndtri(per_test / BENTKUS_DZINDZALIETA_C))
    return min(hoeffding, gaussian)


@dataclass(frozen=True)
class WatermarkParams:
    """The watermark's design: band, cell grid, strength and detection search (docs/watermark.md)."""

    #: Analysis rate of detection: everything above is cut, so 8 kHz resampling and codecs keep it.
    analysis_rate_hz: Hertz = 8_000
    #: Detection STFT at the analysis rate: 32 ms Hann windows every 10 ms.
    n_fft: int = 256
    hop: int = 80
    band_low_hz: float = 300.0
    band_high_hz: float = 3_400.0
    #: The pattern repeats every period; any window this long holds all of it.
    period_s: Seconds = 1.0
    time_cells: int = 50
    freq_cells: int = 48
    #: Gain of one cell as the detector should see it, ± dB (the sign from the key).
    strength_db: float = 2.5
    #: Rounds of informed embedding: each re-analyses the marked audio and corrects every cell's
    #: gain by what the resynthesis lost (cells near the STFT's resolution smear into their
    #: neighbours: one plain pass delivers only ~10 % of the designed contrast, docs/watermark.md).
    embed_iterations: int = 6
    #: Bound on any cell's corrected gain, ± dB (the audibility budget of the corrections).
    max_gain_db: float = 7.0
    #: Share of the cells that carry the sync (presence) pattern; the rest carry payload bits.
    sync_fraction: float = 0.6
    #: The payload a reader reports: the key's 8-bit id, then a 16-bit job hash.
    payload_bits: int = 24
    #: The key id is not embedded: only this key's detector can find the mark, so a find already
    #: says which key made it, and its cells go to the job hash instead.
    key_id_bits: int = 8
    #: The code the job hash is embedded in: its message bits must equal the embedded payload bits.
    payload_code: ExtendedBCHCode = field(default_factory=ExtendedBCHCode)
    #: Bound on the chance that a reading which holds nothing of a payload reports one (the
    #: payload threshold's union bound over every codeword; it replaced a CRC-8's 1/256).
    payload_false_rate: float = 1e-4
    #: Speed factors searched at detection (a speed change scales time and frequency alike).
    max_speed_change: float = 0.12
    speed_step: float = 0.01
    #: Tempo factors searched too, in the same steps: a pitch-preserving tempo change (WSOLA,
    #: ffmpeg's ``atempo``) scales time only. 0 searches none.
    max_tempo_change: float = 0.12
    #: Windows the detector reports on (the localisation of a spliced clip).
    window_s: Seconds = 1.0
    window_hop_s: Seconds = 0.5
    #: Cell residuals are clipped at this multiple of their median magnitude in the window.
    residual_clip: float = 3.0
    #: Family-wise false-positive bound per window (over its offsets and scales): a window of a
    #: recording where the mark is present is reported at this threshold (its localisation).
    false_positive_rate: float = 1e-4
    #: Family-wise false-positive bound per *recording* (over every window, offset and scale):
    #: the mark is present when its best window passes the threshold this sets, so a recording
    #: of any length without the mark is called marked at most this often (a per-window bound
    #: let a 15 s recording through ~30 times as often: a CI run met one, docs/watermark.md).
    recording_false_positive_rate: float = 1e-4
    #: Embedding STFT: window length (s) and overlap (hop = window / 4).
    embed_window_s: Seconds = 0.032
    #: Content binding of the payload (docs/watermark.md, "Copying"): each payload cell's sign is
    #: also multiplied by a bit of the audio it sits in, the sign of a keyed projection of the
    #: levels of its *block* (this many time × frequency cells) and the blocks around it
    #: (``content_span_blocks`` in time, every block of the band), so a payload copied onto other
    #: audio no longer reads. The projection's weights sum to 0 along time in every band, so a
    #: gain or a fixed filter (telephone band, a codec's tilt) leaves it unchanged.
    content_block_time_cells: int = 10
    content_block_freq_cells: int = 8
    content_span_blocks: int = 3
    #: Block levels are floored this far under the period's loudest block: pauses (which noise
    #: fills) weigh no more than a quiet block.
    content_floor_db: float = 30.0
    #: The detector weighs each cell by its projection over this multiple of the period's median
    #: absolute projection, clipped to ±1, instead of by its sign alone (the embedder uses signs).
    content_softness: float = 0.5

    @property
    def embedded_payload_bits(self) -> int:
        """Payload bits that are embedded (the job hash): the key id is implied by the key."""
        return self.payload_bits - self.key_id_bits

    @property
    def coded_bits(self) -> int:
        """The job hash's codeword length: what the payload cells carry."""
        return self.payload_code.length

    @property
    def phase_bins(self) -> int:
        """Time resolution of the folded pattern: one bin per analysis hop."""
        return round(self.period_s * self.analysis_rate_hz / self.hop)

    def _factors(self, max_change: float) -> np.ndarray:
        """Geometric steps of ``speed_step`` within ±``max_change``, 1 included."""
        steps = math.floor(math.log1p(max_change) / math.log1p(self.speed_step))
        return np.exp(np.arange(-steps, steps + 1) * math.log1p(self.speed_step))

    def search_scales(self) -> list[tuple[float, float]]:
        """The (time scale, frequency scale) pairs searched at detection: every speed factor (both
        alike), then every tempo factor but 1 (time only)."""
        speeds = [(float(s), float(s)) for s in self._factors(self.max_speed_change)]
        tempos = [(float(t), 1.0) for t in self._factors(self.max_tempo_change) if not math.isclose(t, 1.0)]
        return speeds + tempos

    @property
    def content_blocks(self) -> tuple[int, int]:
        """(time, frequency) blocks of the content binding in one period."""
        if self.time_cells % self.content_block_time_cells or self.freq_cells % self.content_block_freq_cells:
            raise ValueError("the content blocks must tile the cell grid")
        return self.time_cells // self.content_block_time_cells, self.freq_cells // self.content_block_freq_cells

    def tests_per_window(self) -> int:
        """Correlations tried per window (offsets × scales): the union bound's count."""
        return self.phase_bins * len(self.search_scales())

    def threshold_z(self) -> float:
        """Presence threshold on the sync correlation's z-score.

        Each of the ``tests_per_window`` correlations is, without the key's watermark, a sum of
        independent random signs times fixed values, normalised by their root sum of squares, so
        P(z ≥ u) is at most :func:`rademacher_tail_bound` (u). The union over the tests bounds
        the window's false-positive rate by ``false_positive_rate``: the smallest u where
        ``tests_per_window`` × the bound reaches it.
        """
        return union_threshold_z(self.false_positive_rate, self.tests_per_window())

    def presence_threshold_z(self, windows: int) -> float:
        """Threshold on a recording's best window z for the mark to be present.

        The union over the ``windows`` × ``tests_per_window`` correlations of the recording bounds
        the chance that a recording without this key's mark is called marked by
        ``recording_false_positive_rate``, whatever its length; it is never below
        :meth:`threshold_z` (one window). Rises slowly with length (windows every 0.5 s): 6.04
        for 5 s of speech, 6.22 for 15 s, 6.44 for a minute, 6.78 for ten.
        """
        family = union_threshold_z(self.recording_false_positive_rate, self.tests_per_window() * max(windows, 1))
        return max(family, self.threshold_z())

    def payload_threshold_z(self) -> float:
        """Threshold on the decoded codeword's z-score for the payload to be reported.

        Where the payload cells hold nothing of a payload of this key (a false find, a mark whose
        payload cells were destroyed), the chips there are independent of the audio, so every
        codeword's correlation is a weighted sum of random signs: the union over all
        2**``embedded_payload_bits`` codewords bounds the chance of a reported payload by
        ``payload_false_rate``.
        """
        return union_threshold_z(self.payload_false_rate, 1 << self.embedded_payload_bits)


@dataclass(frozen=True)
class Pattern:
    """A key's cell pattern: ``chips`` (±1), ``role`` (−1 sync, else the coded bit index) and
    the secret ``content_weights`` that bind the payload cells to the audio they sit in."""

    chips: np.ndarray  # (time_cells, freq_cells) of ±1.0
    role: np.ndarray  # (time_cells, freq_cells) of int
    #: (time_cells, freq_cells, span, freq blocks): each cell's own projection of the block levels
    #: around its block (``content_span_blocks`` time blocks, every frequency block); each
    #: (cell, frequency block) row sums to 0 along the span. One per cell, not per block: under a
    #: copy, the cells' content signs then disagree independently, not a block at a time.
    content_weights: np.ndarray

    @classmethod
    def from_key(cls, key: WatermarkKey, params: WatermarkParams) -> Pattern:
        rng = np.random.default_rng(key.seed("pattern"))
        shape = (params.time_cells, params.freq_cells)
        cells = shape[0] * shape[1]
        chips = rng.choice(np.array([-1.0, 1.0]), size=shape)
        sync_cells = round(cells * params.sync_fraction)
        # Payload cells dealt to the bits in turn, then shuffled: every bit gets the same share,
        # spread over the whole period and band.
        roles = np.concatenate([np.full(sync_cells, -1), np.arange(cells - sync_cells) % params.coded_bits])
        # A stream of its own, so the chips and roles of a key stay what they were before.
        _, freq_blocks = params.content_blocks
        weights = np.random.default_rng(key.seed("content")).standard_normal(
            (params.time_cells, params.freq_cells, params.content_span_blocks, freq_blocks)
        )
        # Zero sums along time (every band) and along frequency (every time block): a gain, a
        # fixed filter and the broadband loudness envelope, which any two utterances share in
        # rough shape, all project to 0; what is left is how the spectrum moves in time.
        weights -= weights.mean(axis=2, keepdims=True)
        weights -= weights.mean(axis=3, keepdims=True)
        return cls(chips=chips, role=rng.permutation(roles).reshape(shape), content_weights=weights)

    def signs(self, coded: np.ndarray, content: np.ndarray | None = None) -> np.ndarray:
        """The ±1 gain sign of every cell for the coded bits ``coded`` (0/1) and, on the payload
        cells, the ``content`` bits of one period (:meth:`content_signs`; None: all +1)."""
        bit_signs = np.where(self.role >= 0, 2.0 * coded[np.maximum(self.role, 0)] - 1.0, 1.0)
        if content is not None:
            bit_signs = bit_signs * np.where(self.role >= 0, np.where(content < 0, -1.0, 1.0), 1.0)
        return self.chips * bit_signs

    def content_signs(self, levels_db: np.ndarray, params: WatermarkParams) -> np.ndarray:
        """Per cell: its content bit, the sign of its keyed projection of the block levels around it.

        ``levels_db``: (time_cells, freq_cells) mean dB of each cell over its frames and bins
        (NaN where the period holds none), as the detector measures them. 0 where the
        projection is exactly 0 (a period of silence): such cells carry no content bit.
        """
        time_blocks, freq_blocks = params.content_blocks
        blocks = levels_db.reshape(
            time_blocks, params.content_block_time_cells, freq_blocks, params.content_block_freq_cells
        )
        finite = np.isfinite(blocks)
        cells = finite.sum(axis=(1, 3))
        block_db = np.where(cells > 0, np.where(finite, blocks, 0.0).sum(axis=(1, 3)) / np.maximum(cells, 1), np.nan)
        loudest = np.nanmax(block_db) if np.isfinite(block_db).any() else 0.0
        floor = loudest - params.content_floor_db
        block_db = np.where(np.isfinite(block_db), np.maximum(block_db, floor), floor)
        span = params.content_span_blocks
        starts = np.clip(np.arange(time_blocks) - span // 2, 0, time_blocks - span)
        neighbourhoods = block_db[starts[:, None] + np.arange(span)[None, :]]  # (time blocks, span, freq blocks)
        per_cell = np.repeat(neighbourhoods, params.content_block_time_cells, axis=0)  # (time_cells, span, …)
        projection = np.einsum("tfsg,tsg->tf", self.content_weights, per_cell)
        if params.content_softness <= 0:
            return np.sign(projection)
        # Soft: a projection near 0 is the one an attack flips most often, so it weighs less.
        scale = params.content_softness * max(float(np.median(np.abs(projection))), 1e-9)
        return np.clip(projection / scale, -1.0, 1.0)


@dataclass(frozen=True)
class _CellGrid:
    """Which pooled cell each (frame, bin) of an embedding STFT belongs to.

    A pooled cell is one pattern cell with one gain sign: its corrections are measured over every
    period of the clip where the cell has that sign (the content binding flips payload cells'
    signs from period to period).
    """

    index: np.ndarray  # (frames · bins,) pooled cell of every (frame, bin), frames first
    shape: tuple[int, int]  # (frames, bins)
    cells: int

    def level_db(self, power: np.ndarray, reference_power: np.ndarray) -> np.ndarray:
        """Per pooled cell: 10·log10 of ``power`` summed over it over ``reference_power`` summed so.
        (The detector averages dB within a cell instead; for the gain, uniform over a cell, the two
        agree, and the embedder stays as it was, so marks made before the change read as before.)"""
        summed = np.bincount(self.index, weights=power.ravel(), minlength=self.cells)
        reference = np.bincount(self.index, weights=reference_power.ravel(), minlength=self.cells)
        return 10.0 * np.log10(np.maximum(summed, 1e-30) / np.maximum(reference, 1e-30))

    def spread(self, per_cell: np.ndarray) -> np.ndarray:
        """A per-pooled-cell value on every (frame, bin) of the grid."""
        return per_cell[self.index].reshape(self.shape)


def make_payload(key: WatermarkKey, job: str) -> int:
    """The 24-bit payload of a clone: the key's 8-bit id, then a 16-bit hash of ``job``."""
    job_hash = int.from_bytes(hashlib.sha256(job.encode("utf-8")).digest()[:2], "big")
    return (key.key_id << 16) | job_hash


@dataclass(frozen=True)
class SyncReading:
    """Where one window's sync correlates best: its z-score, (time, frequency) ``scale``, pattern
    ``offset`` (phase bins), and every cell's residual × chip there, (time_cells, freq_cells)."""

    z: float
    scale: tuple[float, float]
    offset: int
    cell_products: np.ndarray


@dataclass(frozen=True)
class WindowReading:
    """What one detection window holds: its best sync z-score, at which time and frequency scale
    (``speed``, ``frequency_scale``: both alike for a speed change, 1 for a tempo change), and its
    payload cells there.

    ``payload_products``: each payload cell's residual times its chip and its content bit, in
    the order of ``Pattern.role >= 0``; summed over windows and per coded bit they give the bits'
    correlations.
    """

    start_s: Seconds
    end_s: Seconds
    z: float
    speed: float
    frequency_scale: float
    payload_products: np.ndarray


@dataclass(frozen=True)
class WindowResiduals:
    """A window's cell residuals, (scales, phase bins, freq cells), and their FFTs along phase."""

    scales: list[tuple[float, float]]
    residuals: np.ndarray
    spectrum: np.ndarray
    energy_spectrum: np.ndarray


def _extent(windows: list[WindowReading], threshold_z: float, present: bool) -> list[WindowReading]:
    """Where a mark found in a recording lies: its windows past one window's threshold (none
    unless the mark is present in the recording)."""
    return [w for w in windows if w.z >= threshold_z] if present else []


@dataclass(frozen=True)
class WatermarkReport:
    """The watermark verdict on a clip, with the per-window readings behind it."""

    present: bool
    confidence: float
    payload: int | None
    windows: list[WindowReading]
    #: Per-window threshold: where the mark is present, the windows at or above it are its extent.
    threshold_z: float
    #: The recording's presence threshold (:meth:`WatermarkParams.presence_threshold_z`).
    presence_threshold_z: float
    #: z-score of the best codeword over the found windows (0 when none was found); the payload
    #: is reported when it reaches :meth:`WatermarkParams.payload_threshold_z`.
    payload_z: float = 0.0

    @property
    def found_windows(self) -> list[WindowReading]:
        """The windows that carry the mark: none unless it is present in the recording."""
        return _extent(self.windows, self.threshold_z, self.present)

    def to_result(self) -> WatermarkResult:
        found = self.found_windows
        return WatermarkResult(
            present=self.present,
            confidence=round(self.confidence, 6),
            payload=None if self.payload is None else f"{self.payload:06x}",
            windows=[WatermarkWindow(start_s=round(w.start_s, 3), end_s=round(w.end_s, 3)) for w in found],
        )


class Watermarker:
    """Embeds and reads one key's watermark. Holds only the key's pattern; thread-safe."""

    @classmethod
    def from_settings(cls, settings: WatermarkSettings | None = None) -> Watermarker:
        """The configured watermarker: the key and the detection search of ``WatermarkSettings``.

        Raises
        ------
        WatermarkKeyError
            As :meth:`WatermarkKey.from_settings`.
        """
        settings = settings or WatermarkSettings()
        params = WatermarkParams(max_speed_change=settings.max_speed_change, max_tempo_change=settings.max_tempo_change)
        return cls(WatermarkKey.from_settings(settings), params)

    def __init__(self, key: WatermarkKey, params: WatermarkParams | None = None) -> None:
        self.key = key
        self.params = params or WatermarkParams()
        if self.params.payload_code.message_bits != self.params.embedded_payload_bits:
            raise ValueError(
                f"the payload code carries {self.params.payload_code.message_bits} bits; "
                f"the payload embeds {self.params.embedded_payload_bits}"
            )
        self.pattern = Pattern.from_key(key, self.params)
        self._threshold_z = self.params.threshold_z()
        self._payload_threshold_z = self.params.payload_threshold_z()

    # -- embedding ------------------------------------------------------------------------------
    def coded_bits(self, payload: int) -> np.ndarray:
        """The bits the payload cells carry for ``payload``: the codeword of its job hash.

        Raises
        ------
        ValueError
            A payload wider than ``payload_bits``, or one whose key id is not this key's
            (build it with :func:`make_payload`).
        """
        params = self.params
        if not 0 <= payload < 1 << params.payload_bits:
            raise ValueError(f"payload must fit in {params.payload_bits} bits; got {payload}")
        if self.payload_key_id(payload) != self.key.key_id:
            raise ValueError(
                f"payload carries key id {self.payload_key_id(payload):02x}, but this key's id is "
                f"{self.key.key_id:02x} (build payloads with make_payload)"
            )
        return params.payload_code.encode(payload & ((1 << params.embedded_payload_bits) - 1))

    def embed(self, audio: Audio, payload: int) -> Audio:
        """``audio`` with the watermark carrying ``payload`` (same rate and length).

        Raises
        ------
        ValueError
            A payload wider than ``payload_bits`` or of another key (:meth:`coded_bits`), or a
            rate too low for the band (below twice
            ``band_high_hz``, 6.8 kHz).
        """
        coded = self.coded_bits(payload)
        if audio.num_samples == 0:
            return audio
        # The content bits are read from the host as the detector will read them from the clone.
        # The mark moves block levels a little, so a few may read flipped there; re-reading them
        # from the marked audio and embedding again read no better (docs/watermark.md), and the
        # detector's soft weights discount the bits near 0, the ones that flip.
        content = self.period_content(audio)
        return self.embed_pattern(audio, np.stack([self.pattern.signs(coded, period) for period in content]))

    def period_content(self, audio: Audio) -> np.ndarray:
        """(periods, time_cells, freq_cells): each period's content bits, as the detector reads
        them from ``audio`` at speed 1 (:meth:`Pattern.content_signs`)."""
        _, levels = self.period_levels(self.log_spectrogram(audio))
        return np.stack([self.pattern.content_signs(period, self.params) for period in levels])

    def period_levels(
        self,
        frames_db: np.ndarray,
        scale: tuple[float, float] = (1.0, 1.0),
        offset: int = 0,
        first_frame: int = 0,
    ) -> tuple[int, np.ndarray]:
        """Mean dB of each cell of each period of a detection spectrogram (:meth:`log_spectrogram`).

        ``frames_db`` starts at frame ``first_frame`` of the clip; the periods are those of a
        pattern at ``offset`` (phase bins) read at ``scale`` (time, frequency), as the detector's
        fold sees them. Returns the index of the first period (period 0 starts where the pattern's
        time cell 0 first falls at or after the clip's start) and (periods, time_cells, freq_cells)
        of mean dB over each cell's frames and bins; NaN where a cell has no frame.
        """
        params = self.params
        phases, width = params.phase_bins, self._cell_width()
        time_scale, frequency_scale = scale
        keep, cell_f = self._band_cells(frequency_scale)
        bin_cell = np.zeros((int(keep.sum()), params.freq_cells))
        bin_cell[np.arange(bin_cell.shape[0]), cell_f[keep]] = 1.0
        position = np.round((first_frame + np.arange(frames_db.shape[0])) * time_scale).astype(int) - offset
        period = position // phases
        first_period = int(period.min()) if len(period) else 0
        periods = int(period.max()) - first_period + 1 if len(period) else 1
        row = (period - first_period) * params.time_cells + (position % phases) // width
        sums = np.zeros((periods * params.time_cells, params.freq_cells))
        np.add.at(sums, row, frames_db[:, keep] @ bin_cell)
        counts = np.bincount(row, minlength=sums.shape[0])[:, None] * bin_cell.sum(axis=0)[None, :]
        levels = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
        return first_period, levels.reshape(periods, params.time_cells, params.freq_cells)

    def embed_pattern(self, audio: Audio, signs: np.ndarray) -> Audio:
        """``audio`` with each period's cells raised or lowered by ``strength_db`` × ``signs``
        ((periods, time_cells, freq_cells) of −1, 0 or +1; a period past the last takes the
        last's signs): the embedder's core, which :meth:`embed` gives the key's signs. Public
        because the copy-attack bench imprints what a forger estimated with it.

        Raises
        ------
        ValueError
            A rate below twice ``band_high_hz`` (6.8 kHz), or ``signs`` of another shape.
        """
        params = self.params
        rate = audio.sample_rate_hz
        if rate < 2 * params.band_high_hz:
            raise ValueError(f"watermarking needs ≥ {2 * params.band_high_hz:g} Hz audio; got {rate} Hz")
        if signs.ndim != 3 or signs.shape[0] < 1 or signs.shape[1:] != (params.time_cells, params.freq_cells):
            raise ValueError(
                f"signs must be (periods ≥ 1, {params.time_cells}, {params.freq_cells}); got {signs.shape}"
            )
        if audio.num_samples == 0:
            return audio
        nperseg = 2 * round(params.embed_window_s * rate / 2)
        hop = nperseg // 4
        # A clip shorter than one window is padded (and cropped back), so the STFT keeps its size.
        samples = np.pad(audio.samples.astype(np.float64), (0, max(nperseg - audio.num_samples, 0)))
        freqs, times, spectrum = signal.stft(samples, fs=rate, window="hann", nperseg=nperseg, noverlap=nperseg - hop)
        in_band = (freqs >= params.band_low_hz) & (freqs < params.band_high_hz)
        cell_f = self._freq_cell(freqs[in_band])
        cell_t = self._time_cell(times)
        period = np.minimum((times // params.period_s).astype(int), signs.shape[0] - 1)
        frame_signs = signs[period[:, None], cell_t[:, None], cell_f[None, :]]  # (frames, bins)
        target_db = params.strength_db * frame_signs
        # The corrections are measured per pattern cell and sign, pooled over the clip's periods:
        # measured per period instead (each detection window sees one), the estimates are noisier
        # and the detector's z came out ~4 % lower on the tuning clips (docs/watermark.md).
        cell = cell_t[:, None] * params.freq_cells + cell_f[None, :]
        cells = _CellGrid(
            index=(3 * cell + np.sign(frame_signs).astype(int) + 1).ravel(),
            shape=frame_signs.shape,
            cells=3 * params.time_cells * params.freq_cells,
        )
        host_power = np.abs(spectrum[in_band, :].T) ** 2
        wanted_db = cells.level_db(host_power * 10.0 ** (target_db / 10.0), host_power)

        def resynthesise(gains_db: np.ndarray) -> np.ndarray:
            marked_spectrum = spectrum.copy()
            marked_spectrum[in_band, :] *= (10.0 ** (gains_db / 20.0)).T
            _, samples_out = signal.istft(
                marked_spectrum, fs=rate, window="hann", nperseg=nperseg, noverlap=nperseg - hop
            )
            return np.pad(samples_out, (0, max(len(samples) - len(samples_out), 0)))[: len(samples)]

        gains_db = target_db
        for _ in range(params.embed_iterations):
            _, _, again = signal.stft(
                resynthesise(gains_db), fs=rate, window="hann", nperseg=nperseg, noverlap=nperseg - hop
            )
            achieved_db = cells.level_db(np.abs(again[in_band, :].T) ** 2, host_power)
            deficit_db = cells.spread(wanted_db - achieved_db)
            gains_db = np.clip(gains_db + deficit_db, -params.max_gain_db, params.max_gain_db)
        marked = resynthesise(gains_db)[: audio.num_samples]
        # A boost may push a peak past full scale: scale down rather than clip.
        peak = float(np.max(np.abs(marked)))
        if peak > 0.999:
            marked *= 0.999 / peak
        return Audio(marked.astype(np.float32), rate)

    def _freq_cell(self, freqs_hz: np.ndarray) -> np.ndarray:
        params = self.params
        width = (params.band_high_hz - params.band_low_hz) / params.freq_cells
        return np.clip(((freqs_hz - params.band_low_hz) // width).astype(int), 0, params.freq_cells - 1)

    def _time_cell(self, times_s: np.ndarray) -> np.ndarray:
        params = self.params
        phase = np.mod(times_s, params.period_s) / params.period_s
        return np.minimum((phase * params.time_cells).astype(int), params.time_cells - 1)

    # -- detection ------------------------------------------------------------------------------
    def log_spectrogram(self, audio: Audio) -> np.ndarray:
        """Power STFT at the analysis rate in dB, (frames, bins) of the band, floored 80 dB under its peak."""
        params = self.params
        samples = audio.resample(params.analysis_rate_hz).samples.astype(np.float64)
        if len(samples) < params.n_fft:
            samples = np.pad(samples, (0, params.n_fft - len(samples)))
        _, _, spectrum = signal.stft(
            samples,
            fs=params.analysis_rate_hz,
            window="hann",
            nperseg=params.n_fft,
            noverlap=params.n_fft - params.hop,
            boundary=None,
            padded=False,
        )
        band = self._analysis_bins()
        power = np.abs(spectrum[band, :].T) ** 2
        # A floor 80 dB under the loudest cell: digital silence must not give -inf (or dominate).
        floor = max(float(power.max()), 1e-20) * 1e-8
        return 10.0 * np.log10(power + floor)

    def _analysis_bins(self) -> np.ndarray:
        params = self.params
        freqs = np.fft.rfftfreq(params.n_fft, 1.0 / params.analysis_rate_hz)
        # Bins a ±max_speed_change scaling can move into the band are analysed too.
        low = params.band_low_hz / (1 + params.max_speed_change)
        high = min(params.band_high_hz * (1 + params.max_speed_change), params.analysis_rate_hz / 2)
        return np.flatnonzero((freqs >= low) & (freqs < high))

    def _band_cells(self, frequency_scale: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For each analysis bin read at ``frequency_scale`` (a number, or an array that
        broadcasts against the bins: one row per scale): whether it maps back into the band, and
        the frequency cell it maps to."""
        params = self.params
        freqs = np.fft.rfftfreq(params.n_fft, 1.0 / params.analysis_rate_hz)[self._analysis_bins()]
        original_f = freqs / frequency_scale
        keep = (original_f >= params.band_low_hz) & (original_f < params.band_high_hz)
        return keep, self._freq_cell(original_f)

    def _cell_width(self) -> int:
        params = self.params
        if params.phase_bins % params.time_cells:
            raise ValueError("phase_bins must be a multiple of time_cells")
        return params.phase_bins // params.time_cells

    def _phase_residuals(
        self, frames_db: np.ndarray, first_frame: int, scales: list[tuple[float, float]]
    ) -> np.ndarray:
        """Cell residuals of a window at each (time, frequency) scale, for every pattern offset at once.

        Returns (scales, phase_bins, freq_cells): row ``φ`` of a scale is the residual of the cell
        that spans phase bins ``[φ, φ + w)`` (``w`` bins per time cell), so the pattern's time cell
        ``c`` at offset ``o`` is row ``(o + c·w) mod phase_bins``. All scales are computed in one
        pass of array operations (the search has 45 of them).
        """
        params = self.params
        phases, width, cells = params.phase_bins, self._cell_width(), params.freq_cells
        frame_s = params.hop / params.analysis_rate_hz
        time_scale = np.array([t for t, _ in scales])[:, None]
        keep, cell_f = self._band_cells(np.array([f for _, f in scales])[:, None])  # (scales, bins)
        frame_times = (first_frame + np.arange(frames_db.shape[0]))[None, :] * frame_s * time_scale
        phase = np.mod(np.round(frame_times / frame_s).astype(int), phases)  # (scales, frames)
        # Fold: (phase bin, freq cell) sums of dB and counts over the window's frames and bins, each
        # scale in its own block of the bincount. A cell's level is the mean of its bins' dB, not
        # the dB of their mean power: one loud bin (a harmonic, an onset) then weighs less, and on
        # the tuning clips the Opus 24 kbps z rose by ~7 % (5th percentile 6.9 → 7.6;
        # docs/watermark.md "How the parameters were chosen").
        size = phases * cells
        block = (np.arange(len(scales)) * size)[:, None, None]
        index = block + phase[:, :, None] * cells + cell_f[:, None, :]  # (scales, frames, bins)
        taken = np.broadcast_to(keep[:, None, :], index.shape)
        values = np.broadcast_to(frames_db[None, :, :], index.shape)[taken]
        shape = (len(scales), phases, cells)
        sums = np.bincount(index[taken], weights=values, minlength=len(scales) * size).reshape(shape)
        # A (phase bin, cell) count is the frames in that phase bin times the kept bins in that cell.
        frames_per_phase = np.stack([np.bincount(row, minlength=phases) for row in phase])
        bins_per_cell = np.stack([np.bincount(c[k], minlength=cells) for c, k in zip(cell_f, keep, strict=True)])
        counts = (frames_per_phase[:, :, None] * bins_per_cell[:, None, :]).astype(float)
        # Box sums over the w phase bins of a cell, starting at every phase bin.
        box_sums = np.sum([np.roll(sums, -step, axis=1) for step in range(width)], axis=0)
        box_counts = np.sum([np.roll(counts, -step, axis=1) for step in range(width)], axis=0)
        present = box_counts > 0
        means = np.where(present, box_sums / np.maximum(box_counts, 1), 0.0)
        # Each cell minus the mean of its present neighbours (time: ±w bins, wrapping with the
        # period; frequency: ±1 cell): the watermark's ±gain plus the speech's fine detail.
        weight = present.astype(float)
        weighted = means * weight
        total = np.roll(weighted, width, axis=1) + np.roll(weighted, -width, axis=1)
        number = np.roll(weight, width, axis=1) + np.roll(weight, -width, axis=1)
        total[:, :, 1:] += weighted[:, :, :-1]
        number[:, :, 1:] += weight[:, :, :-1]
        total[:, :, :-1] += weighted[:, :, 1:]
        number[:, :, :-1] += weight[:, :, 1:]
        residual = np.where(present & (number > 0), means - total / np.maximum(number, 1), 0.0)
        # Onsets and pauses leave residuals of tens of dB that would drown the few-dB watermark
        # in the correlation's norm: clip at a multiple of the window's median magnitude.
        magnitudes = np.abs(residual)
        if present.all():  # speech in every cell, the usual case: one call for all scales
            medians = np.median(magnitudes.reshape(len(scales), -1), axis=1)
        else:
            medians = np.array([np.median(a[m]) if m.any() else 0.0 for a, m in zip(magnitudes, present, strict=True)])
        limit = params.residual_clip * np.maximum(medians, 1e-6)[:, None, None]
        residual = np.clip(residual, -limit, limit)
        # The speech's own residuals are far larger in some bands and moments (harmonics, onsets)
        # than in others: divide each cell by the spread expected at its frequency and moment, so
        # the correlation weighs cells by how much they can be trusted. The weights come from the
        # audio alone, so the tail bound (rademacher_tail_bound) under no watermark still holds.
        power = residual**2
        mean_power = np.maximum(power.mean(axis=(1, 2), keepdims=True), 1e-12)
        expected = power.mean(axis=2, keepdims=True) * power.mean(axis=1, keepdims=True) / mean_power
        return residual / np.sqrt(np.maximum(expected, 1e-6 * mean_power))

    def window_residuals(
        self, frames_db: np.ndarray, first_frame: int, scales: list[tuple[float, float]] | None = None
    ) -> WindowResiduals:
        """The phase residuals of one window at every searched scale (or only at ``scales``: each
        comes out as in the full search), and their FFTs along phase: all that depends on the
        audio alone, so several keys can be tried on it cheaply."""
        scales = self.params.search_scales() if scales is None else scales
        stacked = self._phase_residuals(frames_db, first_frame, scales)
        return WindowResiduals(
            scales=scales,
            residuals=stacked,
            spectrum=np.fft.rfft(stacked, axis=1),
            energy_spectrum=np.fft.rfft(stacked**2, axis=1),
        )

    def read_window(self, frames_db: np.ndarray, first_frame: int) -> SyncReading:
        """Best sync z-score of one window over offsets and scales, where, and the cells there."""
        return self.read_residuals(self.window_residuals(frames_db, first_frame))

    def read_residuals(self, window: WindowResiduals) -> SyncReading:
        """:meth:`read_window` on residuals from :meth:`window_residuals` (of any key's watermarker).

        Every offset's correlation at once: a circular cross-correlation along the phase axis
        with the sync chips placed every ``w`` phase bins (FFT over the phase bins), all scales
        in one array.
        """
        params = self.params
        phases, width = params.phase_bins, self._cell_width()
        chips_f, mask_f = self._sync_spectra
        # corr[s, o] = Σ_φ,f R[s, φ + o, f] · C[φ, f]: summed over f before the inverse FFT.
        numerator = np.fft.irfft((window.spectrum * chips_f).sum(axis=2), n=phases, axis=1)
        energy = np.fft.irfft((window.energy_spectrum * mask_f).sum(axis=2), n=phases, axis=1)
        denominator = np.sqrt(np.maximum(energy, 0.0))
        z = np.where(denominator > 1e-9, numerator / np.maximum(denominator, 1e-9), 0.0)
        scale_index, offset = np.unravel_index(int(np.argmax(z)), z.shape)
        rows = (offset + width * np.arange(params.time_cells)) % phases
        return SyncReading(
            z=float(z[scale_index, offset]),
            scale=window.scales[scale_index],
            offset=int(offset),
            cell_products=window.residuals[scale_index][rows] * self.pattern.chips,
        )

    def payload_products(self, frames_db: np.ndarray, first_frame: int, frames: int, sync: SyncReading) -> np.ndarray:
        """The payload cells' residual × chip × content bit in the window of ``frames`` frames from
        ``first_frame`` (:attr:`WindowReading.payload_products`), at the scale and offset ``sync``
        found there.

        The content bits are those of each cell's own period of the audio, as the embedder read
        them: a window that straddles two periods holds the end of one and the start of the
        next, and a block's neighbourhood may lie outside the window, so the periods are folded
        from the spectrogram around the window (one period either side), not from the window.
        """
        params = self.params
        phases, width = params.phase_bins, self._cell_width()
        time_scale = sync.scale[0]
        margin = math.ceil(phases / time_scale) + 1
        low = max(0, first_frame - margin)
        around = frames_db[low : first_frame + frames + margin]
        first_period, levels = self.period_levels(around, sync.scale, sync.offset, low)
        contents = np.stack([self.pattern.content_signs(period, params) for period in levels])
        # Each cell's first occurrence at or after the window's start, in scaled phase bins.
        start = round(first_frame * time_scale)
        cell_start = sync.offset + width * np.arange(params.time_cells)
        period = -((cell_start - start) // phases)  # ceil((start − cell_start) / phases)
        period = np.clip(period - first_period, 0, len(contents) - 1)
        content = contents[period, np.arange(params.time_cells)]  # (time_cells, freq_cells)
        return (sync.cell_products * content)[self.pattern.role >= 0]

    @cached_property
    def _sync_spectra(self) -> tuple[np.ndarray, np.ndarray]:
        """Conjugate FFTs (along phase) of the sync chips and of the sync mask, placed every ``w`` bins."""
        params = self.params
        width = self._cell_width()
        sync = self.pattern.role < 0
        chips = np.zeros((params.phase_bins, params.freq_cells))
        mask = np.zeros((params.phase_bins, params.freq_cells))
        chips[::width] = np.where(sync, self.pattern.chips, 0.0)
        mask[::width] = sync
        return np.conj(np.fft.rfft(chips, axis=0)), np.conj(np.fft.rfft(mask, axis=0))

    def bit_correlations(self, payload_products: np.ndarray) -> np.ndarray:
        """Per coded bit: the sum of its cells' residual × chip (the sign is the bit's estimate)."""
        roles = self.pattern.role[self.pattern.role >= 0]
        return np.bincount(roles, weights=payload_products, minlength=self.params.coded_bits)

    def window_bits(self, window: WindowReading) -> np.ndarray:
        """The hard coded bits (0/1) one window reads on its own."""
        return (self.bit_correlations(window.payload_products) > 0).astype(np.int64)

    def decode_payload(self, windows: list[WindowReading]) -> tuple[int | None, float]:
        """The payload the ``windows`` carry together, or None when it is not clear enough, and its z.

        The windows' cell products are summed (each already carries its period's content bit), the
        code's maximum-likelihood codeword is taken, and its correlation, normalised by the
        summed products' norm, is the z-score: a weighted sum of random signs when the cells hold
        nothing of a payload, so :meth:`WatermarkParams.payload_threshold_z` bounds false reports.
        """
        params = self.params
        if not windows:
            return None, 0.0
        products = np.sum([w.payload_products for w in windows], axis=0)
        norm = float(np.sqrt(np.sum(products**2)))
        if norm <= 1e-12:
            return None, 0.0
        job_hash, score = params.payload_code.decode(self.bit_correlations(products))
        z = score / norm
        if z < self._payload_threshold_z:
            return None, z
        return (self.key.key_id << params.embedded_payload_bits) | job_hash, z

    def detect(self, audio: Audio) -> WatermarkReport:
        """Read the watermark of ``audio`` in windows of ``window_s`` every ``window_hop_s``.

        Present when the best window's sync z-score passes the recording's
        :meth:`WatermarkParams.presence_threshold_z`; the payload is decoded from the windows
        that pass :meth:`WatermarkParams.threshold_z` together (:meth:`decode_payload`).
        """
        params = self.params
        frames_db = self.log_spectrogram(audio)
        frame_s = params.hop / params.analysis_rate_hz
        windows = []
        for first, count in self.window_frames(frames_db.shape[0]):
            sync = self.read_window(frames_db[first : first + count], first)
            products = self.payload_products(frames_db, first, count, sync)
            end_s = min(audio.duration_s, first * frame_s + params.window_s)
            windows.append(WindowReading(first * frame_s, end_s, sync.z, sync.scale[0], sync.scale[1], products))
        return self.verdict(windows)

    def window_frames(self, total: int) -> list[tuple[int, int]]:
        """(first frame, frames) of each detection window of a spectrogram of ``total`` frames."""
        params = self.params
        frame_s = params.hop / params.analysis_rate_hz
        window_frames = max(1, round((params.window_s - params.n_fft / params.analysis_rate_hz) / frame_s) + 1)
        hop_frames = max(1, round(params.window_hop_s / frame_s))
        starts = list(range(0, max(total - window_frames, 0) + 1, hop_frames))
        tail = total - window_frames - starts[-1]
        if total > window_frames and tail > hop_frames // 2:
            starts.append(total - window_frames)  # the tail gets a full window of its own
        return [(first, window_frames) for first in starts]

    def verdict(self, windows: list[WindowReading]) -> WatermarkReport:
        """The recording's report from its windows' readings (:meth:`detect`'s last step).

        Present when the best window passes the recording's presence threshold (family-wise over
        all its windows); the payload is then decoded from every window that passes the
        per-window threshold, which are also the windows reported.
        """
        params = self.params
        best_z = max((w.z for w in windows), default=0.0)
        presence = params.presence_threshold_z(len(windows))
        present = bool(windows) and best_z >= presence
        # 1 − the family-wise p-value bound of the best window (tests × the per-test tail bound).
        p_bound = min(1.0, params.tests_per_window() * len(windows) * rademacher_tail_bound(best_z)) if windows else 1.0
        found = _extent(windows, self._threshold_z, present)
        payload, payload_z = self.decode_payload(found)
        return WatermarkReport(
            present=present,
            confidence=1.0 - p_bound,
            payload=payload,
            windows=windows,
            threshold_z=self._threshold_z,
            presence_threshold_z=presence,
            payload_z=payload_z,
        )

    def payload_key_id(self, payload: int) -> int:
        """The key id carried in the top 8 bits of ``payload``."""
        return payload >> self.params.embedded_payload_bits
