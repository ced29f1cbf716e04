"""Fake-speech generators, automatically labelled by system and family.

Two sorts:

* **text generators** (espeak-ng, flite, festival, Piper, Kokoro) speak VCTK sentences; each call
  draws its engine settings (voice variant, speed, pitch, Piper noise and length scales, Kokoro
  style mixes) from the item's random generator;
* **copy-synthesis generators** (WORLD, Griffin-Lim, the neural vocoder) re-synthesise a window of
  a real recording: same speaker, same words, only the vocoder's artefacts differ.

The vcfad cloner (kind ``cloner``) is a plugin, found by :mod:`services.detector.dataset.registry`.
Every generator is built once per build (models load in the constructor) and returns raw audio at
its native rate; the builder applies the shared load policy, cropping and augmentation.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np

from services.detector.dataset.config import FAMILIES, REPO_ROOT, System
from services.detector.dataset.vocoders import DEFAULT_VOCODER, MODELS_DIR, load_copy_synthesizer
from shared.audio import Audio
from shared.tts.debian import (
    EspeakNgTTS,
    FestivalTTS,
    FliteTTS,
    MbrolaTTS,
    PicoTTS,
    RHVoiceTTS,
    available_engines,
    festival_voice_installed,
)
from shared.tts.kokoro import VOICES, KokoroTTS
from shared.tts.piper import PiperTTS


class GeneratorUnavailableError(RuntimeError):
    """The engine or model a system needs is missing; the message says which."""


@dataclass(frozen=True)
class Sentence:
    key: str
    text: str


class TextBank:
    """The VCTK sentences (``speaker,wav_file,transcript``), deduplicated by text."""

    def __init__(self, csv_path: Path) -> None:
        if not csv_path.is_file():
            raise FileNotFoundError(f"{csv_path}: VCTK transcript table not found")
        seen: set[str] = set()
        sentences = []
        with csv_path.open(encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(handle):
                text = " ".join((row.get("transcript") or "").split())
                if len(text) < 8 or text.lower() in seen:
                    continue
                seen.add(text.lower())
                sentences.append(Sentence(key=row.get("wav_file") or "", text=text))
        if not sentences:
            raise ValueError(f"{csv_path}: no sentences")
        self.sentences = sentences

    def draw(self, rng: np.random.Generator, count: int) -> list[Sentence]:
        picks = rng.choice(len(self.sentences), size=count, replace=False)
        return [self.sentences[int(i)] for i in picks]


def _uniform(rng: np.random.Generator, options: dict[str, Any], key: str, default: tuple[float, float]) -> float:
    low, high = options.get(key, default)
    return float(rng.uniform(low, high))


class TextGenerator(Protocol):
    system: str
    family: str

    def speak(self, text: str, rng: np.random.Generator) -> tuple[Audio, str]:
        """Speak ``text``; returns raw audio and the voice (speaker column) it used."""
        ...


class CopyGenerator(Protocol):
    system: str
    family: str

    def copy(self, audio: Audio, rng: np.random.Generator) -> Audio:
        """Re-synthesise 16 kHz real speech."""
        ...


# -- text generators -------------------------------------------------------------------------------
class EspeakGenerator:
    """espeak-ng with a random voice/variant, speed and pitch per clip."""

    def __init__(self, system: System) -> None:
        if "espeak-ng" not in available_engines():
            raise GeneratorUnavailableError("espeak-ng is not installed (apt-get install espeak-ng)")
        self.system, self.family = system.name, FAMILIES[system.kind]
        self.voices = list(system.options.get("voices", ["en-us"]))
        self.variants = list(system.options.get("variants", ["m1", "m3", "f1", "f3"]))
        self.options = system.options

    def speak(self, text: str, rng: np.random.Generator) -> tuple[Audio, str]:
        engine = EspeakNgTTS(
            voice=str(rng.choice(self.voices)),
            variant=str(rng.choice(self.variants)) if self.variants else None,
            speed_wpm=round(_uniform(rng, self.options, "speed_wpm", (140, 190))),
            pitch=round(_uniform(rng, self.options, "pitch", (30, 70))),
        )
        return engine.synthesize(text), engine.name


class FliteGenerator:
    """flite with one voice, random duration stretch and pitch."""

    def __init__(self, system: System) -> None:
        if "flite" not in available_engines():
            raise GeneratorUnavailableError("flite is not installed (apt-get install flite)")
        self.system, self.family = system.name, FAMILIES[system.kind]
        self.voices = list(system.options.get("voices", [system.options.get("voice", "slt")]))
        self.options = system.options

    def speak(self, text: str, rng: np.random.Generator) -> tuple[Audio, str]:
        engine = FliteTTS(
            voice=str(rng.choice(self.voices)),
            duration_stretch=_uniform(rng, self.options, "duration_stretch", (0.85, 1.2)),
            f0_shift=_uniform(rng, self.options, "f0_shift", (0.85, 1.2)),
        )
        return engine.synthesize(text), engine.name


class FestivalGenerator:
    """festival (``kal_diphone`` by default, ``options.voice`` another) with a random duration stretch."""

    def __init__(self, system: System) -> None:
        if "festival" not in available_engines():
            raise GeneratorUnavailableError("festival is not installed (apt-get install festival festvox-kallpc16k)")
        self.system, self.family = system.name, FAMILIES[system.kind]
        self.voice = str(system.options.get("voice", "kal_diphone"))
        if not festival_voice_installed(self.voice):
            raise GeneratorUnavailableError(f"the festival voice {self.voice!r} is not installed (scripts/install.sh)")
        self.options = system.options

    def speak(self, text: str, rng: np.random.Generator) -> tuple[Audio, str]:
        engine = FestivalTTS(
            voice=self.voice, duration_stretch=_uniform(rng, self.options, "duration_stretch", (0.85, 1.2))
        )
        return engine.synthesize(text), engine.name


class NonFreeEngineGenerator:
    """The contrib/non-free Debian engines: SVOX Pico, RHVoice and MBROLA, each with one random
    voice per clip from ``options.voices`` and, where the engine has one, a random rate."""

    _DEFAULT_VOICES: ClassVar[dict[str, list[str]]] = {
        "pico": ["en-US", "en-GB"],
        "rhvoice": ["alan", "bdl", "clb", "slt"],
        "mbrola": ["us1", "us2", "us3"],
    }

    def __init__(self, system: System) -> None:
        if system.kind not in available_engines():
            raise GeneratorUnavailableError(
                f"{system.kind} is not installed (Debian contrib/non-free; scripts/install.sh adds it as root)"
            )
        self.system, self.family, self.kind = system.name, FAMILIES[system.kind], system.kind
        self.voices = list(system.options.get("voices", self._DEFAULT_VOICES[system.kind]))
        self.options = system.options

    def speak(self, text: str, rng: np.random.Generator) -> tuple[Audio, str]:
        voice = str(rng.choice(self.voices))
        if self.kind == "pico":
            engine: Any = PicoTTS(language=voice)
        elif self.kind == "rhvoice":
            engine = RHVoiceTTS(voice=voice, rate=_uniform(rng, self.options, "rate", (0.85, 1.2)))
        else:
            speed = round(_uniform(rng, self.options, "speed_wpm", (140, 180)))
            engine = MbrolaTTS(
                voice=voice, speed_wpm=speed, pitch=round(_uniform(rng, self.options, "pitch", (35, 65)))
            )
        return engine.synthesize(text), engine.name


class PiperGenerator:
    """Piper VITS (joe by default) with random noise, length and duration-noise scales."""

    def __init__(self, system: System) -> None:
        try:
            self.engine = PiperTTS(system.options.get("model_path"), threads=1)
        except (ImportError, FileNotFoundError, RuntimeError) as error:
            raise GeneratorUnavailableError(f"Piper is unavailable: {error}") from None
        self.system, self.family = system.name, FAMILIES[system.kind]
        self.options = system.options
        self.voice = str(system.options.get("voice_name", "piper-joe"))
        # Part of the clips' fingerprint: VITS's noise comes from the clip's seed since this.
        self.content_id = "seeded-noise-1"

    def speak(self, text: str, rng: np.random.Generator) -> tuple[Audio, str]:
        audio = self.engine.synthesize(
            text,
            noise_scale=_uniform(rng, self.options, "noise_scale", (0.3, 1.0)),
            length_scale=_uniform(rng, self.options, "length_scale", (0.8, 1.3)),
            noise_w=_uniform(rng, self.options, "noise_w", (0.3, 1.2)),
            seed=int(rng.integers(2**32)),
        )
        return audio, self.voice


class KokoroGenerator:
    """Kokoro-82M with one of the system's style packs or a random mix of two, random speed."""

    def __init__(self, system: System) -> None:
        try:
            self.voices = list(system.options.get("voices", VOICES))
            self.engine = KokoroTTS(self.voices[0], threads=1)
        except (ImportError, FileNotFoundError, RuntimeError) as error:
            raise GeneratorUnavailableError(f"Kokoro is unavailable: {error}") from None
        self.system, self.family = system.name, FAMILIES[system.kind]
        self.options = system.options
        self.mix_p = float(system.options.get("mix_p", 0.5))

    def speak(self, text: str, rng: np.random.Generator) -> tuple[Audio, str]:
        style: str | dict[str, float]
        if len(self.voices) > 1 and rng.random() < self.mix_p:
            first, second = (str(v) for v in rng.choice(self.voices, size=2, replace=False))
            weight = float(rng.uniform(0.2, 0.8))
            style = {first: weight, second: 1.0 - weight}
            voice = f"kokoro-{first}{weight:.1f}+{second}"
        else:
            style = str(rng.choice(self.voices))
            voice = f"kokoro-{style}"
        speed = _uniform(rng, self.options, "speed", (0.85, 1.15))
        return self.engine.synthesize(text, voice=style, speed=speed), voice


# -- copy-synthesis -----------------------------------------------------------------------------------
class WorldCopy:
    """WORLD analysis (DIO/Harvest + StoneMask, CheapTrick, D4C) and resynthesis."""

    def __init__(self, system: System) -> None:
        try:
            import pyworld  # noqa: F401  # probed here: without it this generator is unavailable, not the module
        except ImportError as error:
            raise GeneratorUnavailableError(f"pyworld is not installed: {error}") from None
        self.system, self.family = system.name, FAMILIES[system.kind]
        self.harvest_p = float(system.options.get("harvest_p", 0.3))

    def copy(self, audio: Audio, rng: np.random.Generator) -> Audio:
        import pyworld  # optional: probed in __init__, so the module imports without it

        x = audio.samples.astype(np.float64)
        rate = audio.sample_rate_hz
        frame_ms = float(rng.choice([5.0, 5.0, 10.0]))
        if rng.random() < self.harvest_p:
            f0, t = pyworld.harvest(x, rate, frame_period=frame_ms)
        else:
            f0, t = pyworld.dio(x, rate, frame_period=frame_ms)
            f0 = pyworld.stonemask(x, f0, t, rate)
        envelope = pyworld.cheaptrick(x, f0, t, rate)
        aperiodicity = pyworld.d4c(x, f0, t, rate)
        y = pyworld.synthesize(f0, envelope, aperiodicity, rate, frame_period=frame_ms)
        return Audio(y[: len(x)].astype(np.float32), rate)


class GriffinLimCopy:
    """Magnitude (or 80-band mel) spectrogram inverted by Griffin-Lim phase reconstruction."""

    def __init__(self, system: System) -> None:
        self.system, self.family = system.name, FAMILIES[system.kind]
        self.mel_p = float(system.options.get("mel_p", 0.5))
        # Part of the clips' fingerprint: the initial phases come from the clip's seed since this.
        self.content_id = "seeded-phase-1"

    def copy(self, audio: Audio, rng: np.random.Generator) -> Audio:
        import librosa  # loads numba: only a Griffin-Lim copy pays for it, not `vcfad --help`

        x = audio.samples.astype(np.float32)
        rate = audio.sample_rate_hz
        n_fft = int(rng.choice([512, 1024]))
        hop = n_fft // 4
        n_iter = int(rng.integers(16, 64))
        magnitude = np.abs(librosa.stft(x, n_fft=n_fft, hop_length=hop))
        if rng.random() < self.mel_p:
            mel = librosa.feature.melspectrogram(S=magnitude**2, sr=rate, n_fft=n_fft, n_mels=80)
            magnitude = np.sqrt(librosa.feature.inverse.mel_to_stft(mel, sr=rate, n_fft=n_fft))
        y = librosa.griffinlim(magnitude, n_iter=n_iter, hop_length=hop, n_fft=n_fft, length=len(x), random_state=rng)
        return Audio(y.astype(np.float32), rate)


class NeuralVocoderCopy:
    """A neural vocoder: a trained folder of :mod:`services.detector.dataset.neural_vocoder`
    (``options.model_path``), or a pretrained one by name (``hifigan-v1-universal``,
    ``hifigan-v1-LJSpeech``, ``hifigan-ts-16k``: :mod:`services.detector.dataset.pretrained_vocoder`)."""

    def __init__(self, system: System) -> None:
        model = str(system.options.get("model_path") or MODELS_DIR / DEFAULT_VOCODER)
        if (REPO_ROOT / model).is_dir():  # a folder relative to the repo (an absolute one stays as is)
            model = str(REPO_ROOT / model)
        try:
            self.vocoder = load_copy_synthesizer(model, threads=1)
        except (FileNotFoundError, RuntimeError, ValueError, KeyError, OSError) as error:
            raise GeneratorUnavailableError(f"neural vocoder {model!r} is unavailable: {error}") from None
        self.system, self.family = system.name, FAMILIES[system.kind]
        # Part of the build's resume key: other weights or another analysis make new clips.
        self.content_id = self.vocoder.content_id

    def copy(self, audio: Audio, rng: np.random.Generator) -> Audio:
        return self.vocoder.copy_synthesize(audio)


TEXT_KINDS = {
    "espeak-ng": EspeakGenerator,
    "flite": FliteGenerator,
    "festival": FestivalGenerator,
    "pico": NonFreeEngineGenerator,
    "rhvoice": NonFreeEngineGenerator,
    "mbrola": NonFreeEngineGenerator,
    "piper": PiperGenerator,
    "kokoro": KokoroGenerator,
}
COPY_KINDS = {
    "world-copy": WorldCopy,
    "griffinlim-copy": GriffinLimCopy,
    "neural-vocoder-copy": NeuralVocoderCopy,
}
