"""Classical text-to-speech engines from Debian packages: espeak-ng, flite and festival.

Each engine runs its command-line program in a subprocess (no Python bindings needed) and returns
an :class:`~shared.audio.Audio` at the engine's native sample rate, like the other engines of
:mod:`shared.tts`::

    audio = EspeakNgTTS(voice="en-us", variant="f3", speed_wpm=160).synthesize("Please call Stella.")

They are formant (espeak-ng), diphone or HTS (festival ``kal_diphone``, ``cmu_us_slt_arctic_hts``)
and clustergen/diphone (flite) synthesizers: the "classical-tts" family of the detector's fakes.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from shared.audio import Audio, Hertz, decode_audio
from shared.tts import TextToSpeechError, check_text

#: Longest text one call accepts; the engines are fast but a runaway input should fail clearly.
MAX_TEXT_CHARS = 2_000
_TIMEOUT_S = 120.0


class TTSEngineError(RuntimeError):
    """The engine's program is missing or failed; the message names it."""


def _require(program: str, package: str) -> str:
    path = shutil.which(program)
    if path is None:
        raise TTSEngineError(f"`{program}` is not installed (apt-get install {package})")
    return path


def _clean_text(text: str) -> str:
    text = check_text(text)
    if len(text) > MAX_TEXT_CHARS:
        raise TextToSpeechError(f"the text has {len(text)} characters; at most {MAX_TEXT_CHARS} are accepted")
    return text


def _run_to_wav(command: list[str], out_path: Path, stdin_text: str | None = None) -> Audio:
    try:
        completed = subprocess.run(
            command,
            input=stdin_text,
            capture_output=True,
            text=True,
            timeout=_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise TTSEngineError(f"`{command[0]}` took longer than {_TIMEOUT_S:g} s") from None
    if completed.returncode != 0 or not out_path.exists() or out_path.stat().st_size <= 44:
        raise TTSEngineError(
            f"`{Path(command[0]).name}` failed (exit {completed.returncode}): {completed.stderr.strip()[:300]}"
        )
    return decode_audio(out_path)


@dataclass(frozen=True)
class EspeakNgTTS:
    """espeak-ng (formant synthesis).

    Parameters
    ----------
    voice
        An espeak-ng language voice, e.g. ``en-us``, ``en-gb``, ``en-gb-scotland``.
    variant
        An espeak-ng variant (``m1``..``m7``, ``f1``..``f5``, ``klatt``, ``Annie`` ...) or None.
    speed_wpm, pitch
        espeak-ng's ``-s`` (words per minute) and ``-p`` (0–99) options.
    """

    voice: str = "en-us"
    variant: str | None = None
    speed_wpm: int = 175
    pitch: int = 50

    @property
    def name(self) -> str:
        return f"espeak-ng-{self.voice}" + (f"+{self.variant}" if self.variant else "")

    @property
    def sample_rate_hz(self) -> Hertz:
        return 22_050

    def synthesize(self, text: str) -> Audio:
        """Speak ``text``; returns audio at espeak-ng's native 22.05 kHz."""
        program = _require("espeak-ng", "espeak-ng")
        text = _clean_text(text)
        voice = f"{self.voice}+{self.variant}" if self.variant else self.voice
        with tempfile.TemporaryDirectory(prefix="vcfad-espeak-") as folder:
            out = Path(folder) / "out.wav"
            command = [
                program, "-v", voice, "-s", str(self.speed_wpm), "-p", str(self.pitch),
                "-w", str(out), "--", text,
            ]  # fmt: skip
            return _run_to_wav(command, out)


#: flite's built-in voices with a 16 kHz rate (``kal`` is 8 kHz and ``awb_time`` only says the time).
FLITE_VOICES = ("slt", "rms", "awb", "kal16")


@dataclass(frozen=True)
class FliteTTS:
    """flite (CMU Flite: ``slt``, ``rms``, ``awb`` clustergen voices; ``kal16`` diphone).

    Parameters
    ----------
    voice
        One of :data:`FLITE_VOICES` (or another name ``flite -lv`` lists).
    duration_stretch
        flite's ``duration_stretch`` feature: above 1 speaks slower.
    f0_shift
        Multiplies the pitch target mean (flite's ``int_f0_target_mean``), 1 = unchanged.
    """

    voice: str = "slt"
    duration_stretch: float = 1.0
    f0_shift: float = 1.0

    @property
    def name(self) -> str:
        return f"flite-{self.voice}"

    @property
    def sample_rate_hz(self) -> Hertz:
        return 8_000 if self.voice == "kal" else 16_000

    def synthesize(self, text: str) -> Audio:
        """Speak ``text``; returns audio at the voice's native rate (16 kHz for the voices above)."""
        program = _require("flite", "flite")
        text = _clean_text(text)
        with tempfile.TemporaryDirectory(prefix="vcfad-flite-") as folder:
            out = Path(folder) / "out.wav"
            command = [program, "-voice", self.voice, "--setf", f"duration_stretch={self.duration_stretch:.3f}"]
            if self.f0_shift != 1.0:
                # The mean pitch of flite's voices is ~100–170 Hz; scale a typical 120 Hz target.
                command += ["--setf", f"int_f0_target_mean={120.0 * self.f0_shift:.1f}"]
            command += ["-t", text, "-o", str(out)]
            return _run_to_wav(command, out)


#: Where Debian's festvox packages put their voices (one folder per voice, under a language folder).
FESTIVAL_VOICES_DIR = Path("/usr/share/festival/voices")


def festival_voice_installed(voice: str) -> bool:
    """Whether festival has ``voice`` (a name without the ``voice_`` prefix) on this machine."""
    return any(FESTIVAL_VOICES_DIR.glob(f"*/{voice}"))


@dataclass(frozen=True)
class FestivalTTS:
    """festival's ``text2wave`` (default ``kal_diphone``, 16 kHz diphone synthesis; HTS voices such
    as ``cmu_us_slt_arctic_hts`` speak at their own rate, 32 kHz there).

    Parameters
    ----------
    voice
        A festival voice name without the ``voice_`` prefix, e.g. ``kal_diphone``.
    duration_stretch
        festival's ``Duration_Stretch`` parameter: above 1 speaks slower.
    """

    voice: str = "kal_diphone"
    duration_stretch: float = 1.0

    @property
    def name(self) -> str:
        return "festival-" + self.voice.removesuffix("_diphone")

    @property
    def sample_rate_hz(self) -> Hertz:
        return 32_000 if self.voice.endswith("_hts") else 16_000

    def synthesize(self, text: str) -> Audio:
        """Speak ``text``; returns audio at the voice's native rate."""
        program = _require("text2wave", "festival")
        if not festival_voice_installed(self.voice):
            raise TTSEngineError(
                f"the festival voice {self.voice!r} is not installed (e.g. apt-get install festvox-us-slt-hts)"
            )
        text = _clean_text(text)
        with tempfile.TemporaryDirectory(prefix="vcfad-festival-") as folder:
            out = Path(folder) / "out.wav"
            command = [
                program, "-o", str(out),
                "-eval", f"(voice_{self.voice})",
                "-eval", f"(Parameter.set 'Duration_Stretch {self.duration_stretch:.3f})",
            ]  # fmt: skip
            return _run_to_wav(command, out, stdin_text=text + "\n")


@dataclass(frozen=True)
class PicoTTS:
    """SVOX Pico (``pico2wave``; Debian non-free ``libttspico-utils``): ``en-US`` or ``en-GB``, 16 kHz."""

    language: str = "en-US"

    @property
    def name(self) -> str:
        return f"pico-{self.language}"

    @property
    def sample_rate_hz(self) -> Hertz:
        return 16_000

    def synthesize(self, text: str) -> Audio:
        program = _require("pico2wave", "libttspico-utils (Debian non-free)")
        text = _clean_text(text)
        with tempfile.TemporaryDirectory(prefix="vcfad-pico-") as folder:
            out = Path(folder) / "out.wav"  # pico2wave insists on a .wav name
            return _run_to_wav([program, "-l", self.language, "-w", str(out), text], out)


#: RHVoice's English voices (Debian non-free ``rhvoice-english``).
RHVOICE_VOICES = ("alan", "bdl", "clb", "slt")


@dataclass(frozen=True)
class RHVoiceTTS:
    """RHVoice (``RHVoice-test``; Debian non-free ``rhvoice`` + ``rhvoice-english``), HTS-based.

    Parameters
    ----------
    voice
        One of :data:`RHVOICE_VOICES`.
    rate
        Speaking rate relative to normal (1.0).
    """

    voice: str = "slt"
    rate: float = 1.0

    @property
    def name(self) -> str:
        return f"rhvoice-{self.voice}"

    @property
    def sample_rate_hz(self) -> Hertz:
        return 24_000

    def synthesize(self, text: str) -> Audio:
        program = _require("RHVoice-test", "rhvoice rhvoice-english (Debian non-free)")
        text = _clean_text(text)
        with tempfile.TemporaryDirectory(prefix="vcfad-rhvoice-") as folder:
            out = Path(folder) / "out.wav"
            command = [program, "-p", self.voice, "-r", str(round(self.rate * 100)), "-o", str(out)]
            return _run_to_wav(command, out, stdin_text=text + "\n")


@dataclass(frozen=True)
class MbrolaTTS:
    """MBROLA diphone voices driven by espeak-ng (Debian contrib/non-free ``mbrola`` + ``mbrola-us1``...).

    Parameters
    ----------
    voice
        An MBROLA voice, e.g. ``us1`` (female), ``us2`` / ``us3`` (male); espeak-ng's ``mb-<voice>``.
    speed_wpm, pitch
        espeak-ng's ``-s`` and ``-p`` options.
    """

    voice: str = "us1"
    speed_wpm: int = 160
    pitch: int = 50

    @property
    def name(self) -> str:
        return f"mbrola-{self.voice}"

    @property
    def sample_rate_hz(self) -> Hertz:
        return 16_000

    def synthesize(self, text: str) -> Audio:
        program = _require("espeak-ng", "espeak-ng")
        _require("mbrola", "mbrola (Debian contrib)")
        if not Path("/usr/share/mbrola", self.voice).exists():
            raise TTSEngineError(
                f"the MBROLA voice {self.voice!r} is not installed (apt-get install mbrola-{self.voice})"
            )
        text = _clean_text(text)
        with tempfile.TemporaryDirectory(prefix="vcfad-mbrola-") as folder:
            out = Path(folder) / "out.wav"
            command = [
                program, "-v", f"mb-{self.voice}", "-s", str(self.speed_wpm), "-p", str(self.pitch),
                "-w", str(out), "--", text,
            ]  # fmt: skip
            return _run_to_wav(command, out)


def available_engines() -> list[str]:
    """Names of the Debian engines whose programs are installed.

    ``espeak-ng``, ``flite``, ``festival`` (Debian main); ``pico``, ``rhvoice``, ``mbrola``
    (contrib/non-free, installed by ``scripts/install.sh`` through a private apt source list).
    """
    found = []
    programs = (
        ("espeak-ng", "espeak-ng"),
        ("flite", "flite"),
        ("festival", "text2wave"),
        ("pico", "pico2wave"),
        ("rhvoice", "RHVoice-test"),
        ("mbrola", "mbrola"),
    )
    for name, program in programs:
        if shutil.which(program):
            found.append(name)
    return found
