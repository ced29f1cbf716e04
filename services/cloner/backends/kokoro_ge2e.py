"""``kokoro-ge2e`` (default): Kokoro-82M with a style vector fitted to the reference speaker
through the GE2E speaker embedding — SV2TTS's transfer from speaker verification, done as a
search instead of a trained mapping, because only the synthesizer's inference graph ships.

Kokoro's 256-float style (128 timbre + 128 prosody) conditions its decoder and prosody
predictor. A style here is ``mix @ packs + delta``: a weighting of the five shipped style packs
plus a free offset. Enrollment:

1. **bank look-up** — a precomputed bank (``models/cloner/kokoro_style_bank.npz``, built by
   :func:`build_bank`) holds a few hundred random styles with the GE2E embedding and median F0 of
   their speech on fixed calibration sentences; the entry nearest the reference embedding
   (GE2E cosine minus an F0-mismatch penalty) is the voice — no synthesis needed;
2. **refinement** (``fit_iterations`` > 0, off by default) — first the average of the three
   nearest entries, then a (1+1) evolution strategy on the style, each candidate scored by the
   GE2E cosine of its calibration speech to the reference (one synthesis call each);
3. **prosody** (``pitch_fit`` on, ``rate_fit`` off by default) — the fitted voice speaks the
   calibration sentences once; its median F0 and articulation rate against the reference's
   (:func:`shared.voice_analysis.analyse_voice`: the same measures on both; a rate counts the
   syllables of the words) give a factor on Kokoro's predicted F0 curve
   (:func:`shared.tts.kokoro.with_pitch_input`) and its speed, each within a cap;
4. the fitted voice (style table, pitch, speed) is cached on disk per reference set.

Only the synthesizer's conditioning changes: the phonetic content is Kokoro's own, so
intelligibility stays near plain Kokoro's.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from services.cloner.voice import ReferenceVoice
from shared.asr import SpeechRecognizer
from shared.audio import Audio, Hertz
from shared.progress import ProgressCallback
from shared.speaker import SpeakerEncoder, cosine_similarity
from shared.tts.kokoro import KokoroTTS, text_syllables
from shared.tts.kokoro_styles import stacked_packs, style_spread
from shared.voice_analysis import analyse_voice, median_f0_hz

if TYPE_CHECKING:
    from services.cloner.config import ClonerSettings

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_BANK = REPO_ROOT / "models" / "cloner" / "kokoro_style_bank.npz"
#: Sentences spoken to measure a style's voice (not used as evaluation texts).
CALIBRATION_SENTENCES = (
    "The old man walked slowly along the river, looking for a place to rest.",
    "She asked me to call her brother after dinner on Thursday.",
)
#: Bump when the prosody fit's measures change: cached voices fitted by the old ones are refitted.
#: 2: the rate counts the words' syllables (Whisper on the reference), not intensity peaks;
#: 3: each vowel symbol is a syllable (a run of them was one).
PROSODY_VERSION = 3
#: How much of a reference's start its articulation rate is measured on, in seconds.
RATE_REFERENCE_S = 20.0
#: Weight of the F0 mismatch (in octaves) against the GE2E cosine when ranking styles.
F0_WEIGHT = 0.15


@dataclass(frozen=True)
class StyleParams:
    """A point of the style space: ``mix @ packs + delta``."""

    mix: np.ndarray  # (5,) pack weights (normalised to sum 1 when used)
    delta: np.ndarray  # (256,) offset added to every row of the table

    def table(self, packs: np.ndarray) -> np.ndarray:
        weights = self.mix / max(float(self.mix.sum()), 1e-3)
        return (np.tensordot(weights, packs, axes=1) + self.delta[None, :]).astype(np.float32)

    def vector(self) -> np.ndarray:
        return np.concatenate([self.mix, self.delta]).astype(np.float32)

    @classmethod
    def from_vector(cls, vector: np.ndarray, packs_count: int = 5) -> StyleParams:
        return cls(mix=np.asarray(vector[:packs_count], np.float64), delta=np.asarray(vector[packs_count:], np.float64))


@dataclass(frozen=True)
class FittedVoice:
    """An enrolled voice: the style table Kokoro speaks with, and how it scored."""

    table: np.ndarray  # (510, 256)
    similarity: float  # GE2E cosine of calibration speech to the reference
    f0_hz: float
    #: Factor on Kokoro's F0 curve (1.0 = the style's own pitch), fitted to the reference's pitch.
    pitch: float = 1.0
    #: Kokoro's speed (1.0 = the style's own pace), fitted to the reference's articulation rate.
    speed: float = 1.0


@dataclass(frozen=True)
class ProsodyFit:
    """What of the reference's prosody an enrolled voice takes, and how far it may move."""

    #: Move the voice's median F0 to the reference's.
    pitch: bool = False
    #: Move the voice's articulation rate (syllables per second, pauses excluded) to the reference's.
    rate: bool = False
    #: Largest pitch move, in semitones either way.
    max_pitch_shift_st: float = 6.0
    #: Largest speed factor either way (1.25: from 0.8× to 1.25× the style's pace).
    max_speed_ratio: float = 1.25

    @property
    def active(self) -> bool:
        return self.pitch or self.rate

    def tag(self) -> str:
        """Part of a cached voice's name: a voice fitted under other prosody settings is refitted."""
        if not self.active:
            return ""
        caps = f"{self.max_pitch_shift_st:g}st-{self.max_speed_ratio:g}x"
        return f"-prosody{PROSODY_VERSION}-{int(self.pitch)}{int(self.rate)}-{caps}"


class StyleMeter:
    """Speaks the calibration sentences with a style and measures the voice (GE2E, F0)."""

    def __init__(self, tts: KokoroTTS, encoder: SpeakerEncoder) -> None:
        self.tts = tts
        self.encoder = encoder
        self.packs = stacked_packs(tts.packs)
        self._tokens = [tts.tokens(tts.phonemes(s)[0]) for s in CALIBRATION_SENTENCES]
        #: Syllables of the calibration sentences (the articulation rate of their speech counts them).
        self.syllables = sum(tts.syllables(s) for s in CALIBRATION_SENTENCES)
        self.spread = style_spread(self.packs)

    def speak(self, params: StyleParams) -> Audio:
        return self.speak_table(params.table(self.packs))

    def speak_table(self, table: np.ndarray) -> Audio:
        """The calibration sentences in the style ``table``, at the style's own pitch and pace."""
        gap = np.zeros(int(0.2 * 24_000), np.float32)
        parts = []
        for tokens in self._tokens:
            parts += [self.tts.synthesize_tokens(tokens, style=table, speed=1.0, pitch=1.0), gap]
        return Audio(np.concatenate(parts[:-1]), self.tts.sample_rate_hz)

    def measure(self, params: StyleParams) -> tuple[np.ndarray, float]:
        """(GE2E embedding, median F0 in Hz) of the calibration speech."""
        audio = self.speak(params)
        return self.encoder.embed(audio), median_f0_hz(audio)


def _score(embedding: np.ndarray, f0_hz: float, target: np.ndarray, target_f0_hz: float) -> float:
    score = cosine_similarity(embedding, target)
    if f0_hz > 0 and target_f0_hz > 0:
        score -= F0_WEIGHT * abs(np.log2(f0_hz / target_f0_hz))
    return score


# -- the bank ------------------------------------------------------------------------------------
def sample_params(rng: np.random.Generator, spread: np.ndarray, index: int, packs_count: int = 5) -> StyleParams:
    """Random style number ``index``: a Dirichlet mix of the packs plus an offset of random size.

    Four of the five packs are female voices; every other style leans on the male pack (the
    last, ``jm_kumo``) so that the bank covers low voices as well as high ones.
    """
    alpha = np.full(packs_count, 0.6)
    if index % 2 == 1:
        alpha[-1] = 4.0
    mix = rng.dirichlet(alpha)
    scale = rng.uniform(0.0, 2.2)
    return StyleParams(mix=mix, delta=rng.normal(0.0, 1.0, spread.shape) * spread * scale)


def build_bank(out: Path, count: int, seed: int = 0, threads: int = 1) -> Path:
    """Measure ``count`` random styles (embedding + F0) and save them as a bank (resumable)."""
    meter = StyleMeter(KokoroTTS(threads=threads), SpeakerEncoder(threads=threads))
    rng = np.random.default_rng(seed)
    params, embeddings, f0s = [], [], []
    if out.exists():
        with np.load(out) as old:
            params, embeddings, f0s = list(old["params"]), list(old["embeddings"]), list(old["f0_hz"])
        for index in range(len(params)):  # keep the random stream where it was
            sample_params(rng, meter.spread, index)
    started = time.perf_counter()
    while len(params) < count:
        candidate = sample_params(rng, meter.spread, len(params))
        embedding, f0 = meter.measure(candidate)
        params.append(candidate.vector())
        embeddings.append(embedding)
        f0s.append(f0)
        if len(params) % 10 == 0 or len(params) == count:
            _save_bank(out, params, embeddings, f0s, seed)
            elapsed = time.perf_counter() - started
            logger.warning("bank: %d/%d styles (%.0f s)", len(params), count, elapsed)
    return out


def _save_bank(out: Path, params: list, embeddings: list, f0s: list, seed: int) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp.npz")
    np.savez_compressed(
        tmp,
        params=np.asarray(params, np.float32),
        embeddings=np.asarray(embeddings, np.float32),
        f0_hz=np.asarray(f0s, np.float32),
        meta=np.array(json.dumps({"seed": seed, "calibration": CALIBRATION_SENTENCES})),
    )
    tmp.replace(out)


@dataclass(frozen=True)
class StyleBank:
    params: np.ndarray  # (n, 261)
    embeddings: np.ndarray  # (n, 256)
    f0_hz: np.ndarray  # (n,)

    @classmethod
    def load(cls, path: Path) -> StyleBank:
        with np.load(path) as bank:
            return cls(bank["params"], bank["embeddings"], bank["f0_hz"])

    def nearest(self, target: np.ndarray, target_f0_hz: float, k: int) -> list[int]:
        scores = [_score(e, f, target, target_f0_hz) for e, f in zip(self.embeddings, self.f0_hz, strict=True)]
        return list(np.argsort(scores)[::-1][:k])


# -- the backend ----------------------------------------------------------------------------------
class StyleFitter:
    """Finds the style whose speech the GE2E encoder finds closest to a reference speaker."""

    def __init__(
        self, meter: StyleMeter, bank: StyleBank | None, iterations: int, seed: int = 0, time_limit_s: float = 0.0
    ) -> None:
        self.meter = meter
        self.bank = bank
        self.iterations = iterations
        self.seed = seed
        #: Wall-clock cap of the refinement (0 = none): a slow machine stops early, never hangs a job.
        self.time_limit_s = time_limit_s

    def starts(
        self, target: np.ndarray, target_f0_hz: float, k: int = 1
    ) -> list[tuple[StyleParams, np.ndarray, float]]:
        """Starting styles with their measured (embedding, F0): the bank's nearest, else the packs."""
        if self.bank is None or len(self.bank.params) == 0:
            eye = np.eye(len(self.meter.packs))
            packs = [StyleParams(mix=row, delta=np.zeros(self.meter.packs.shape[-1])) for row in eye]
            return [(params, *self.meter.measure(params)) for params in packs]
        return [
            (StyleParams.from_vector(self.bank.params[i]), self.bank.embeddings[i], float(self.bank.f0_hz[i]))
            for i in self.bank.nearest(target, target_f0_hz, k)
        ]

    def fit(self, voice: ReferenceVoice, progress: ProgressCallback | None = None) -> FittedVoice:
        target, target_f0 = voice.embedding, voice.stats.get("median_f0_hz", 0.0)
        rng = np.random.default_rng(self.seed)
        best_params, best_score, best_sim, best_f0 = None, -np.inf, 0.0, 0.0
        starts = self.starts(target, target_f0, k=3)
        for params, embedding, f0 in starts:
            score = _score(embedding, f0, target, target_f0)
            if score > best_score:
                best_params, best_score, best_sim, best_f0 = params, score, cosine_similarity(embedding, target), f0
        assert best_params is not None
        total = max(1, self.iterations)
        step = 0.5
        started = time.monotonic()
        for done in range(1, self.iterations + 1):
            if self.time_limit_s and time.monotonic() - started > self.time_limit_s:
                logger.info("style search stopped by its time limit after %d of %d candidates", done - 1, total)
                break
            if done == 1 and len(starts) > 1:
                # First try the average of the nearest styles: a voice between close neighbours.
                candidate = StyleParams(
                    mix=np.mean([p.mix / p.mix.sum() for p, _, _ in starts], axis=0),
                    delta=np.mean([p.delta for p, _, _ in starts], axis=0),
                )
            else:
                candidate = StyleParams(
                    mix=np.clip(best_params.mix + rng.normal(0, 0.08, best_params.mix.shape), 0, None) + 1e-3,
                    delta=best_params.delta + rng.normal(0, 1, best_params.delta.shape) * self.meter.spread * step,
                )
            embedding, f0 = self.meter.measure(candidate)
            score = _score(embedding, f0, target, target_f0)
            if score > best_score:
                best_params, best_score, best_sim, best_f0 = candidate, score, cosine_similarity(embedding, target), f0
                step = min(step * 1.3, 1.0)
            else:
                step = max(step * 0.93, 0.15)
            if progress:
                progress(done / total, "fitting voice")
        return FittedVoice(table=best_params.table(self.meter.packs), similarity=best_sim, f0_hz=best_f0)


def fit_prosody(
    meter: StyleMeter, fitted: FittedVoice, voice: ReferenceVoice, fit: ProsodyFit, reference_rate_hz: float = 0.0
) -> FittedVoice:
    """``fitted`` with the pitch and speed that bring its calibration speech to the reference's
    median F0 and articulation rate (``reference_rate_hz``: :meth:`KokoroGE2EBackend.reference_rate_hz`;
    0 = unknown), each as ``fit`` allows; one synthesis call."""
    if not fit.active:
        return fitted
    spoken = analyse_voice(meter.speak_table(fitted.table))
    pitch = speed = 1.0
    reference_f0, own_f0 = voice.stats.get("median_f0_hz", 0.0), spoken.median_f0_hz
    if fit.pitch and meter.tts.pitch_control and reference_f0 > 0 and own_f0 > 0:
        limit = 2.0 ** (fit.max_pitch_shift_st / 12)
        pitch = float(np.clip(reference_f0 / own_f0, 1 / limit, limit))
    own_rate = spoken.articulation_rate_hz(meter.syllables)
    if fit.rate and reference_rate_hz > 0 and own_rate > 0:
        speed = float(np.clip(reference_rate_hz / own_rate, 1 / fit.max_speed_ratio, fit.max_speed_ratio))
    logger.info("prosody fit: pitch ×%.3f (F0 %.0f → %.0f Hz), speed ×%.3f", pitch, own_f0, reference_f0, speed)
    return dataclasses.replace(fitted, pitch=pitch, speed=speed)


def reference_rate_hz(voice: ReferenceVoice, recognizer: SpeechRecognizer) -> float:
    """The reference's articulation rate: the syllables of ``recognizer``'s words in its first
    ≤ :data:`RATE_REFERENCE_S` seconds per second of their phonation (0.0 without words or speech).
    The rate fit's measure, and eval-clone's for the pace error."""
    piece = voice.clips[0].crop(0.0, RATE_REFERENCE_S)
    return analyse_voice(piece).articulation_rate_hz(text_syllables(recognizer.transcribe(piece)))


class KokoroGE2EBackend:
    """Kokoro speaking in a style fitted to the reference through the GE2E embedding."""

    name = "kokoro-ge2e"

    def __init__(self, settings: ClonerSettings, speaker_encoder: SpeakerEncoder) -> None:
        self.tts = KokoroTTS(threads=settings.threads, graph=settings.kokoro_graph)
        self.synthesizer_id = f"{self.name}-{Path(self.tts.model_path).stem}"
        meter = StyleMeter(self.tts, speaker_encoder)
        self.meter = meter
        self.threads = settings.threads
        self._recognizer: SpeechRecognizer | None = None
        self.prosody = ProsodyFit(
            pitch=settings.pitch_fit,
            rate=settings.rate_fit,
            max_pitch_shift_st=settings.pitch_fit_max_st,
            max_speed_ratio=settings.rate_fit_max_ratio,
        )
        bank = StyleBank.load(DEFAULT_BANK) if DEFAULT_BANK.exists() else None
        if bank is None:
            logger.warning("no style bank at %s: fitting starts from the five packs", DEFAULT_BANK)
        self.fitter = StyleFitter(meter, bank, settings.fit_iterations, settings.fit_seed, settings.fit_time_limit_s)
        self.cache = settings.voices_dir()
        # A cached voice is only valid for the bank and the graph file that made it.
        bank_id = hashlib.sha256(DEFAULT_BANK.read_bytes()).hexdigest()[:10] if bank is not None else "none"
        self._tag = (
            f"{self.synthesizer_id}-i{settings.fit_iterations}-s{settings.fit_seed}-bank{bank_id}{self.prosody.tag()}"
        )

    @property
    def sample_rate_hz(self) -> Hertz:
        return self.tts.sample_rate_hz

    def enroll(self, voice: ReferenceVoice, progress: ProgressCallback | None = None) -> FittedVoice:
        path = self.cache / f"{self._tag}-{voice.key}.npz"
        if path.exists():
            with np.load(path) as cached:
                prosody = {name: float(cached[name]) for name in ("pitch", "speed") if name in cached.files}
                return FittedVoice(cached["table"], float(cached["similarity"]), float(cached["f0_hz"]), **prosody)
        rate = self.reference_rate_hz(voice) if self.prosody.rate else 0.0
        fitted = fit_prosody(self.meter, self.fitter.fit(voice, progress), voice, self.prosody, rate)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(
            tmp,
            table=fitted.table,
            similarity=fitted.similarity,
            f0_hz=fitted.f0_hz,
            pitch=fitted.pitch,
            speed=fitted.speed,
        )
        tmp.replace(path)
        return fitted

    def reference_rate_hz(self, voice: ReferenceVoice) -> float:
        """:func:`reference_rate_hz` with Whisper base (loaded on first use: only the rate fit needs it)."""
        if self._recognizer is None:
            self._recognizer = SpeechRecognizer("base", threads=self.threads)
        return reference_rate_hz(voice, self._recognizer)

    def synthesize(self, enrolled: FittedVoice, text: str, progress: ProgressCallback | None = None) -> Audio:
        return self.tts.synthesize(text, voice=enrolled.table, speed=enrolled.speed, pitch=enrolled.pitch)
