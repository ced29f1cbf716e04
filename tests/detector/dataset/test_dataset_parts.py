"""Config validation, augmentation, the shortcut probe's features and the Debian TTS engines."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from services.detector.dataset.augment import augment, codec, distortion, noise_gate
from services.detector.dataset.build.items import apportion, draw_duration
from services.detector.dataset.config import REPO_ROOT, Augment, ConfigError, Windows, load_config, parse_config
from services.detector.dataset.probe import FEATURES, clip_features, probe_rows
from services.detector.input_floor import coloured_noise
from services.detector.training.manifest import ManifestRow
from shared.audio import Audio, load_audio
from shared.tts import TextToSpeech, TextToSpeechError
from shared.tts.debian import (
    EspeakNgTTS,
    FestivalTTS,
    FliteTTS,
    MbrolaTTS,
    PicoTTS,
    RHVoiceTTS,
    TTSEngineError,
    available_engines,
    festival_voice_installed,
)

MINIMAL = {
    "name": "x",
    "real": [{"name": "ls", "reader": "shared-manifest", "path": "librispeech/manifest.tsv"}],
    "systems": [{"name": "e", "kind": "espeak-ng", "split": "train"}],
}


# -- config -----------------------------------------------------------------------------------------
BUILD_CONFIGS = sorted(p for p in (REPO_ROOT / "configs" / "detector").glob("*.toml") if p.name != "sources.toml")


@pytest.mark.parametrize("path", BUILD_CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_are_valid(path: Path) -> None:
    config = load_config(path)
    assert (config.systems and config.real) or config.external is not None
    assert config.output_path() == REPO_ROOT / "data" / "detector" / config.name


def test_config_error_names_the_bad_field() -> None:
    bad = {**MINIMAL, "systems": [{"name": "e", "kind": "espeak-ng", "split": "training"}]}
    with pytest.raises(ConfigError, match=r"systems\.0\.split"):
        parse_config(bad)
    with pytest.raises(ConfigError, match=r"windows\.colour"):
        parse_config({**MINIMAL, "windows": {"colour": 1}})
    with pytest.raises(ConfigError, match="duplicate system name"):
        parse_config({**MINIMAL, "systems": MINIMAL["systems"] * 2})
    with pytest.raises(ConfigError, match="max_s"):
        parse_config({**MINIMAL, "windows": {"min_s": 4, "max_s": 2}})


def test_config_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such config"):
        load_config(tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("name = [", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(broken)


def test_durations_share_one_distribution() -> None:
    rng = np.random.default_rng(0)
    windows = Windows(min_s=1.0, max_s=6.0, distribution="log-uniform")
    values = np.array([draw_duration(rng, windows) for _ in range(4000)])
    assert values.min() >= 1.0 and values.max() <= 6.0
    assert abs(np.median(values) - np.sqrt(6.0)) < 0.1  # log-uniform median = geometric mean
    assert apportion(10, [1, 1, 1]) == [4, 3, 3] or sorted(apportion(10, [1, 1, 1])) == [3, 3, 4]
    assert sum(apportion(709, [1, 0.5, 0.5, 1.5, 2])) == 709


# -- augmentation ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def speech(librispeech_clip: Path) -> Audio:
    return load_audio(librispeech_clip).crop(0.0, 3.0)


def test_augment_is_seeded_and_keeps_length(speech: Audio) -> None:
    config = Augment()
    descriptions = set()
    for seed in range(12):
        out, description = augment(speech, np.random.default_rng(seed), config)
        again, same = augment(speech, np.random.default_rng(seed), config)
        assert description == same and np.array_equal(out.samples, again.samples)
        assert out.sample_rate_hz == 16_000 and out.num_samples == speech.num_samples
        assert np.all(np.isfinite(out.samples)) and np.max(np.abs(out.samples)) <= 0.99 + 1e-6
        descriptions.add(description)
    assert len(descriptions) > 6  # the chain really varies


def test_noise_floor_always_covers_digital_silence() -> None:
    silence_then_tone = np.concatenate([np.zeros(8000), 0.1 * np.sin(np.arange(16000) * 0.1)]).astype(np.float32)
    out, _ = augment(Audio(silence_then_tone, 16_000), np.random.default_rng(1), Augment(codec_p=0, noise_p=0))
    floor_db = 20 * np.log10(np.sqrt(np.mean(out.samples[:8000] ** 2)))
    assert -62 < floor_db < -38  # the target range of Augment.floor_dbfs (−58…−40), give or take


@pytest.mark.parametrize("name", ["mp3", "ogg", "opus"])
def test_codec_round_trip_stays_aligned(speech: Audio, name: str) -> None:
    out, description = codec(speech.samples, np.random.default_rng(3), [name])
    assert description.startswith(name) and len(out) == speech.num_samples
    correlation = np.corrcoef(out, speech.samples)[0, 1]
    assert correlation > 0.8, f"{name} round trip is misaligned (r={correlation:.2f})"


def test_distortion_adds_harmonics_and_keeps_the_level() -> None:
    # A pure 500 Hz tone (an exact 1 Hz bin of a 1 s FFT) has no energy elsewhere; both modes
    # (harmonics through random band filters, soft clipping) put at least −45 dB of it elsewhere.
    tone = (0.3 * np.sin(2 * np.pi * 500 * np.arange(16_000) / 16_000)).astype(np.float32)
    clean = np.abs(np.fft.rfft(tone)) ** 2
    assert clean[np.r_[0:480, 521:8001]].sum() < 1e-12 * clean.sum()
    modes = set()
    for seed in range(40):
        out, name = distortion(tone, np.random.default_rng(seed))
        again, _ = distortion(tone, np.random.default_rng(seed))
        assert np.array_equal(out, again) and len(out) == len(tone) and np.all(np.isfinite(out))
        assert np.sqrt(np.mean(out**2)) == pytest.approx(np.sqrt(np.mean(tone**2)), rel=1e-3)
        power = np.abs(np.fft.rfft(out)) ** 2
        assert power[np.r_[0:480, 521:8001]].sum() > 3e-5 * power.sum(), name
        modes.add(name.split("(")[1][:4])
    assert modes == {"harm", "clip"}


def test_augment_applies_distortion_when_asked(speech: Audio) -> None:
    descriptions = [augment(speech, np.random.default_rng(seed), Augment(distortion_p=1.0))[1] for seed in range(5)]
    assert all("distort(" in d for d in descriptions)
    assert not any("distort(" in augment(speech, np.random.default_rng(s), Augment())[1] for s in range(20))


def test_noise_gate_mutes_the_pauses_and_keeps_the_speech() -> None:
    # Bursts of a tone (the "speech") 0.3 s long, with pauses of faint noise 60 dB under them:
    # every gate the draw can make mutes the pauses to digital silence, once its hold has passed,
    # and leaves the bursts as they were, away from their edges.
    rate, burst = 16_000, 4_800
    tone = (0.3 * np.sin(2 * np.pi * 220 * np.arange(burst) / rate)).astype(np.float32)
    faint = (0.3e-3 * np.random.default_rng(0).standard_normal(burst)).astype(np.float32)
    signal_ = np.concatenate([faint, tone, faint, tone, faint])
    for seed in range(20):
        out, name = noise_gate(signal_, np.random.default_rng(seed))
        again, _ = noise_gate(signal_, np.random.default_rng(seed))
        assert np.array_equal(out, again) and len(out) == len(signal_) and name.startswith("gate(")
        # A pause's second half is past any hold (at most 120 ms): digital silence, up to the
        # gate's look-ahead (one 5 ms frame and its fade) before the next burst.
        for start in (0, 2 * burst, 4 * burst):
            assert not np.any(out[start + burst // 2 : start + burst - 160]), (seed, start)
        # A burst's middle is untouched.
        for start in (burst, 3 * burst):
            middle = slice(start + 400, start + burst - 400)
            assert np.array_equal(out[middle], signal_[middle]), (seed, start)


def test_augment_gates_only_when_asked(speech: Audio) -> None:
    descriptions = [augment(speech, np.random.default_rng(seed), Augment(gate_p=1.0))[1] for seed in range(5)]
    assert all("gate(" in d for d in descriptions)
    assert not any("gate(" in augment(speech, np.random.default_rng(s), Augment())[1] for s in range(20))


def test_coloured_noise_slopes() -> None:
    rng = np.random.default_rng(0)
    white, brown = coloured_noise(rng, 32000, 0.0), coloured_noise(rng, 32000, 2.0)

    def high_share(x: np.ndarray) -> float:
        power = np.abs(np.fft.rfft(x)) ** 2
        return power[len(power) // 2 :].sum() / power.sum()

    assert high_share(white) > 0.4 and high_share(brown) < 0.01


# -- probe -------------------------------------------------------------------------------------------
def test_clip_features_see_silence_and_band(speech: Audio) -> None:
    base = clip_features(speech.samples, 16_000)
    padded = np.concatenate([speech.samples, np.zeros(32000, dtype=np.float32)])
    with_silence = clip_features(padded, 16_000)
    assert len(base) == len(FEATURES)
    assert with_silence[0] == pytest.approx(base[0] + 2.0)
    assert with_silence[2] > base[2] + 0.3 and with_silence[1] < base[1] - 40
    narrow = load_audio(speech.resample(8000).to_wav_bytes()).resample(16_000)
    assert clip_features(narrow.samples, 16_000)[3] < base[3] - 10


def test_probe_flags_a_planted_shortcut_and_not_a_fair_set() -> None:
    rng = np.random.default_rng(0)
    rows, fair, leaky = [], [], []
    for split in ("train", "dev", "test"):
        for index in range(60):
            fake = index % 2 == 1
            rows.append(
                ManifestRow(
                    Path(f"{split}{index}.wav"),
                    "spoof" if fake else "bonafide",
                    system="tts" if fake else "bonafide",
                    split=split,
                )
            )
            features = rng.normal(size=4)
            fair.append(features)
            leaky.append(features + np.array([0, 3.0 if fake else 0.0, 0, 0]))  # fakes: higher noise floor
    assert probe_rows(rows, np.array(leaky)).eer["test"] < 0.1
    result = probe_rows(rows, np.array(fair))
    assert result.eer["test"] > 0.3
    assert set(result.per_system) == {"tts@train", "tts@dev", "tts@test"}


# -- Debian engines --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "engine",
    [
        EspeakNgTTS(variant="f3", speed_wpm=160),
        FliteTTS("slt", duration_stretch=1.1),
        FliteTTS("kal16"),
        FestivalTTS(),
        FestivalTTS("cmu_us_slt_arctic_hts", duration_stretch=1.1),
        PicoTTS("en-GB"),
        RHVoiceTTS("alan", rate=1.1),
        MbrolaTTS("us2"),
    ],
    ids=lambda e: e.name,
)
def test_debian_engines_speak(engine: TextToSpeech) -> None:
    program = engine.name.split("-")[0].replace("espeak", "espeak-ng")  # type: ignore[attr-defined]
    # pico, rhvoice and mbrola come from Debian contrib/non-free: scripts/install.sh installs them as root.
    if program not in available_engines():
        pytest.skip(f"{program} is not installed")
    if isinstance(engine, FestivalTTS) and not festival_voice_installed(engine.voice):
        pytest.skip(f"the festival voice {engine.voice} is not installed (scripts/install.sh installs it)")
    assert isinstance(engine, TextToSpeech)
    short = engine.synthesize("Please call Stella.")
    long = engine.synthesize("Please call Stella. Ask her to bring these things with her from the store.")
    assert short.sample_rate_hz == engine.sample_rate_hz
    assert 0.5 < short.duration_s < long.duration_s < 10
    assert -40 < long.rms_dbfs() < 0
    with pytest.raises(TextToSpeechError):
        engine.synthesize("   ")


def test_a_missing_festival_voice_is_named_not_a_festival_traceback() -> None:
    from services.detector.dataset.config import System
    from services.detector.dataset.generators import GeneratorUnavailableError
    from services.detector.dataset.registry import build_generator

    if "festival" not in available_engines():
        pytest.skip("festival is not installed")
    with pytest.raises(TTSEngineError, match="'no_such_voice' is not installed"):
        FestivalTTS("no_such_voice").synthesize("Please call Stella.")
    system = System(name="festival-x", kind="festival", split="test", options={"voice": "no_such_voice"})
    with pytest.raises(GeneratorUnavailableError, match="'no_such_voice' is not installed"):
        build_generator(system)


@pytest.mark.parametrize("kind", ["pico", "rhvoice", "mbrola"])
def test_nonfree_engine_generators_draw_voices(kind: str) -> None:
    from services.detector.dataset.config import System
    from services.detector.dataset.generators import GeneratorUnavailableError
    from services.detector.dataset.registry import build_generator

    system = System(name=kind, kind=kind, split="test", optional=True)
    if kind not in available_engines():
        with pytest.raises(GeneratorUnavailableError, match="not installed"):
            build_generator(system)
        pytest.skip(f"{kind} is not installed (Debian contrib/non-free; scripts/install.sh adds it as root)")
    generator = build_generator(system)
    assert generator.family == "classical-tts"
    voices = set()
    for seed in range(6):
        audio, voice = generator.speak("Please call Stella.", np.random.default_rng(seed))
        assert voice.startswith(f"{kind}-") and 0.5 < audio.duration_s < 5
        voices.add(voice)
    assert len(voices) > 1  # a random voice per clip


def test_seeded_generators_repeat_whatever_ran_before(speech: Audio) -> None:
    """A clip is a function of its seed: Griffin-Lim's initial phases and Piper's VITS noise come
    from the clip's random generator, not from state left by earlier clips."""
    from services.detector.dataset.config import System
    from services.detector.dataset.registry import build_generator

    window = speech.crop(0.0, 1.5)
    griffinlim = build_generator(System(name="gl", kind="griffinlim-copy", split="test"))
    piper = build_generator(System(name="piper", kind="piper", split="train"))

    def both(seed: int) -> tuple[np.ndarray, np.ndarray]:
        copy = griffinlim.copy(window, np.random.default_rng(seed))
        spoken, _ = piper.speak("A short sentence for the test.", np.random.default_rng(seed))
        return copy.samples, spoken.samples

    first = both(1)
    both(2)  # other clips in between
    again = both(1)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
