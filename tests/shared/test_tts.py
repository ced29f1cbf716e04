"""shared.tts engines (Piper, Kokoro), the WER judge helpers and the speaker encoder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from shared.asr import normalize_text, word_error_rate
from shared.audio import Audio, load_audio
from shared.tts import TextToSpeech, TextToSpeechError


@pytest.fixture(scope="module")
def piper():
    from shared.tts.piper import PiperTTS

    return PiperTTS(threads=1)


@pytest.fixture(scope="module")
def kokoro():
    from shared.tts.kokoro import KokoroTTS

    return KokoroTTS(threads=1)


def test_piper_speaks_and_obeys_its_parameters(piper) -> None:
    assert isinstance(piper, TextToSpeech)
    audio = piper.synthesize("Hello there, my friend.")
    assert isinstance(audio, Audio) and audio.sample_rate_hz == 22_050
    assert 0.8 < audio.duration_s < 4 and audio.rms_dbfs() > -40
    slow = piper.synthesize("Hello there, my friend.", length_scale=1.6, noise_w=0.0)
    assert slow.duration_s > audio.duration_s * 1.3
    with pytest.raises(TextToSpeechError, match="empty"):
        piper.synthesize("  ")


def test_piper_noise_comes_from_the_seed(piper, monkeypatch) -> None:
    from shared.offline_models import piper_joe_voice
    from shared.tts.piper import PiperTTS, seeded_noise_graph

    text = "Two sentences here. And a second one, a little longer than the first."
    first = piper.synthesize(text, seed=3)
    piper.synthesize("Something else in between.")  # earlier calls must not shift the noise
    assert np.array_equal(piper.synthesize(text, seed=3).samples, first.samples)
    assert np.array_equal(PiperTTS(threads=1).synthesize(text, seed=3).samples, first.samples)  # a new engine
    assert not np.array_equal(piper.synthesize(text, seed=4).samples, first.samples)
    # Threads sharing one engine each get their own noise stream.
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as pool:
        both = list(pool.map(lambda s: piper.synthesize(text, seed=s).samples, [3, 4, 3, 4]))
    assert np.array_equal(both[0], first.samples) and np.array_equal(both[2], first.samples)
    assert np.array_equal(both[1], both[3]) and not np.array_equal(both[0], both[1])
    # However little noise is fed at first, the audio is the same (the stream is grown, not redrawn).
    monkeypatch.setattr("shared.tts.piper._NOISE_PER_PHONEME", 1)
    assert np.array_equal(piper.synthesize(text, seed=3).samples, first.samples)
    # Both of VITS's noise draws (duration predictor, prior) are inputs now, no random node is left.
    import onnx

    graph, inputs = seeded_noise_graph(piper_joe_voice())
    assert inputs == ["noise_0", "noise_1"]
    assert not [node.name for node in onnx.load_from_string(graph).graph.node if "Random" in node.op_type]


def test_kokoro_speaks_english_with_packs_and_mixes(kokoro) -> None:
    from shared.tts.kokoro import VOICES

    assert isinstance(kokoro, TextToSpeech)
    # espeak IPA mapped to Kokoro's symbols: diphthongs and affricates as single letters.
    assert kokoro.phonemes("I go, judge.") == ["I ɡˈO, ʤˈʌʤ."]
    audio = kokoro.synthesize("Good morning.")
    assert audio.sample_rate_hz == 24_000 and 0.5 < audio.duration_s < 3 and audio.rms_dbfs() > -40
    mixed = kokoro.synthesize("Good morning.", voice={VOICES[0]: 0.5, "jm_kumo": 0.5})
    assert not np.array_equal(mixed.samples[:1000], audio.samples[:1000])
    vector = kokoro.packs["jm_kumo"][20]
    assert kokoro.synthesize("Good morning.", voice=vector).duration_s > 0.5
    with pytest.raises(ValueError, match="unknown Kokoro voice"):
        kokoro.synthesize("Good morning.", voice="af_heart")
    with pytest.raises(ValueError, match="256 values"):
        kokoro.resolve_style(np.zeros(10))
    with pytest.raises(TextToSpeechError):
        kokoro.synthesize("")


def test_wer_normalisation() -> None:
    assert normalize_text("Mr. Smith's 2 dogs—barked!") == "mister smith's two dogs barked"
    assert word_error_rate("the cat sat", "The cat, sat.") == 0.0
    assert word_error_rate("the cat sat", "the dog sat") == pytest.approx(1 / 3)
    assert word_error_rate(["a b", "c d"], ["a b", "c x"]) == pytest.approx(0.25)
    with pytest.raises(ValueError):
        word_error_rate("", "x")


def test_speaker_encoder_separates_speakers(speaker_files: dict[str, list[Path]]) -> None:
    from shared.speaker import SpeakerEncoder

    encoder = SpeakerEncoder(threads=1)
    (a, files_a), (b, files_b) = list(speaker_files.items())[:2]
    same = encoder.similarity(load_audio(files_a[0]), [load_audio(f) for f in files_a[1:3]])
    other = encoder.similarity(load_audio(files_a[0]), [load_audio(f) for f in files_b[:2]])
    assert same > 0.8 and other < same - 0.1, (a, b, same, other)


@pytest.mark.slow
def test_whisper_transcribes_piper(piper) -> None:
    from shared.asr import SpeechRecognizer

    text = "Please bring the blue folder to the meeting tomorrow."
    hypothesis = SpeechRecognizer("tiny.en", threads=1).transcribe(piper.synthesize(text))
    assert word_error_rate(text, hypothesis) <= 0.2, hypothesis


def test_kokoro_pitch_moves_the_voice_and_nothing_else(kokoro) -> None:
    import onnxruntime

    from shared.tts.kokoro import PITCH_INPUT, fast_kokoro_model_path, kokoro_model_path, model_feed
    from shared.voice_analysis import analyse_voice

    text = "She asked me to call her brother after dinner on Thursday."
    assert kokoro.pitch_control and PITCH_INPUT in [i.name for i in kokoro._session.get_inputs()]
    plain = kokoro.synthesize(text, voice="jm_kumo")
    higher = kokoro.synthesize(text, voice="jm_kumo", pitch=2 ** (4 / 12))
    lower = kokoro.synthesize(text, voice="jm_kumo", pitch=2 ** (-4 / 12))
    shift = {
        name: 12 * np.log2(analyse_voice(a).median_f0_hz / analyse_voice(plain).median_f0_hz)
        for name, a in (("higher", higher), ("lower", lower))
    }
    assert 2.5 < shift["higher"] < 5.0 and -5.0 < shift["lower"] < -2.5, shift
    assert higher.duration_s == pytest.approx(plain.duration_s, abs=0.02)  # the pace is the speed's, not the pitch's
    # At 1.0 each edited graph is its unedited file, sample for sample.
    packaged = kokoro.__class__(threads=1, graph="packaged")
    tokens = packaged.tokens(packaged.phonemes(text)[0])
    table = packaged.resolve_style("jm_kumo")
    for engine, source in ((packaged, kokoro_model_path()), (kokoro, fast_kokoro_model_path())):
        assert engine.pitch_control and engine.model_path == source
        session = onnxruntime.InferenceSession(str(source), providers=["CPUExecutionProvider"])
        original = session.run(None, model_feed(tokens, table))[0].ravel()
        np.testing.assert_array_equal(engine.synthesize_tokens(tokens, table), original)
    with pytest.raises(ValueError, match="positive factor"):
        kokoro.synthesize(text, pitch=float("nan"))
