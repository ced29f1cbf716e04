"""The envelope stage: offsets learned from a parallel recording move a new sentence toward the
speaker without touching its words; the stage is fitted once per voice and cached."""

from __future__ import annotations

import itertools
from pathlib import Path

import librosa
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.cloner.config import ClonerSettings
from services.cloner.envelope import EnvelopeAnalysis, EnvelopeCorrection, WhisperFrames, reference_pieces
from services.cloner.pipeline import Cloner
from shared.asr import SpeechRecognizer, word_error_rate
from shared.audio import Audio, load_audio
from shared.speaker import SpeakerEncoder
from shared.tts.kokoro import KokoroTTS
from shared.tts.piper import PiperTTS

TRAINING_SENTENCES = (
    "The old lighthouse keeper climbed the stairs every evening to light the lamp.",
    "Seven small boats were waiting in the harbour when the storm finally passed.",
    "She found her grandmother's letters hidden in a box beneath the kitchen floor.",
)
NEW_SENTENCE = "Please bring the blue folder to the meeting tomorrow morning."


@settings(max_examples=60, deadline=None)
@given(
    durations_s=st.lists(st.floats(0.2, 45.0), min_size=1, max_size=5),
    segment_s=st.floats(2.0, 25.0),
    max_total_s=st.floats(1.0, 90.0),
)
def test_reference_pieces_are_bounded_ordered_and_never_overlap(
    durations_s: list[float], segment_s: float, max_total_s: float
) -> None:
    rate = 100  # a ramp per clip: a piece's samples say where in the clip it came from
    clips = [Audio(np.arange(int(d * rate), dtype=np.float32) + 1e6 * i, rate) for i, d in enumerate(durations_s)]
    pieces = reference_pieces(clips, segment_s, max_total_s)
    assert sum(p.duration_s for p in pieces) <= max_total_s + 1e-9
    starts = [float(p.samples[0]) for p in pieces]
    assert starts == sorted(starts), "pieces come in the reference's order"
    assert all(1.0 <= piece.duration_s <= segment_s + 1e-9 for piece in pieces)
    for piece, following in itertools.pairwise(pieces):
        assert piece.samples[-1] < following.samples[0], "pieces never overlap"
    usable_s = sum(d for d in durations_s if d >= 1.0)
    if usable_s >= max_total_s + segment_s:  # plenty of speech: the budget is nearly used up
        assert sum(p.duration_s for p in pieces) >= max_total_s - 1.0 - 1e-9


def test_fit_without_aligned_speech_says_why() -> None:
    with pytest.raises(ValueError, match="aligned speech frames"):
        EnvelopeCorrection.fit([], neighbours=8, max_gain_db=12.0, smoothing_frames=3)


def test_zero_offsets_leave_the_audio_as_it_was(real_clip: Path) -> None:
    audio = load_audio(real_clip).resample(24_000)
    analysis = EnvelopeAnalysis()
    features = analysis.matching_features(analysis.log_mel_db(audio))
    correction = EnvelopeCorrection(
        features=features.astype(np.float32),
        offsets_db=np.zeros((len(features), analysis.bands), np.float32),
        neighbours=4,
        max_gain_db=12.0,
        smoothing_frames=3,
        typical_distance=1.0,
    )
    out = correction.apply(audio)
    assert out.sample_rate_hz == audio.sample_rate_hz and out.num_samples == audio.num_samples
    error = np.sqrt(np.mean((out.samples - audio.samples) ** 2)) / np.sqrt(np.mean(audio.samples**2))
    assert error < 1e-3, error


def test_frames_far_from_every_synthetic_frame_are_left_alone(speaker_files: dict[str, list[Path]]) -> None:
    # Offsets of +6 dB learned on one recording's frames: the same frames get them in full; when
    # the typical distance is tiny, another speaker's frames are all "far" and get almost none.
    speakers = sorted(speaker_files)
    known, other = load_audio(speaker_files[speakers[0]][0]), load_audio(speaker_files[speakers[1]][0])
    analysis = EnvelopeAnalysis()
    features = analysis.matching_features(analysis.log_mel_db(known)).astype(np.float32)
    offsets = np.full((len(features), analysis.bands), 6.0, np.float32)

    def correction(typical_distance: float) -> EnvelopeCorrection:
        return EnvelopeCorrection(features, offsets, neighbours=1, max_gain_db=12.0, smoothing_frames=1,
                                  typical_distance=typical_distance)  # fmt: skip

    np.testing.assert_allclose(correction(1e-3).gains_db(known), 6.0, atol=1e-3)
    assert np.abs(correction(1e-3).gains_db(other)).max() < 0.01
    assert np.abs(correction(1e3).gains_db(other)).min() > 5.9, "a wide confidence applies every offset"


def test_a_constant_gain_reaches_every_frame_at_a_rate_whose_hop_is_not_whole(real_clip: Path) -> None:
    # At 22.05 kHz 10 ms is 220.5 samples: the gains must still cover the clip to its end.
    audio = load_audio(real_clip).resample(22_050)
    analysis = EnvelopeAnalysis()
    features = analysis.matching_features(analysis.log_mel_db(audio)).astype(np.float32)
    offsets = np.full((len(features), analysis.bands), 6.0, np.float32)
    correction = EnvelopeCorrection(features, offsets, neighbours=1, max_gain_db=12.0, smoothing_frames=1,
                                    typical_distance=1e3)  # fmt: skip
    out = correction.apply(audio)
    # Compare below the analysed range's top, where the full gain applies (it fades above).
    low = 7_000.0
    spectrum_in = np.abs(librosa.stft(audio.samples, n_fft=1024))
    spectrum_out = np.abs(librosa.stft(out.samples, n_fft=1024))
    bins = librosa.fft_frequencies(sr=22_050, n_fft=1024) < low
    for part in (slice(0, 50), slice(-50, None)):  # the first and the last half second
        ratio_db = 20 * np.log10(spectrum_out[bins, part].sum() / spectrum_in[bins, part].sum())
        assert abs(ratio_db - 6.0) < 0.5, ratio_db


def test_a_fitted_correction_survives_storage(two_voices: tuple[KokoroTTS, PiperTTS]) -> None:
    kokoro, piper = two_voices
    sentence = TRAINING_SENTENCES[0]
    correction = EnvelopeCorrection.fit(
        [(kokoro.synthesize(sentence, voice="jf_alpha"), piper.synthesize(sentence))],
        neighbours=4,
        max_gain_db=9.0,
        smoothing_frames=3,
    )
    again = EnvelopeCorrection.from_bytes(correction.to_bytes())
    assert (again.neighbours, again.max_gain_db, again.smoothing_frames) == (4, 9.0, 3)
    assert again.typical_distance == correction.typical_distance
    np.testing.assert_array_equal(again.features, correction.features)
    np.testing.assert_array_equal(again.offsets_db, correction.offsets_db)


def test_slower_real_speech_still_teaches_offsets(two_voices: tuple[KokoroTTS, PiperTTS]) -> None:
    # Real speech 1.4× slower than the synthetic: DTW pairs each synthetic frame with several real
    # ones; they become one row each, and the stage still acts.
    kokoro, piper = two_voices
    pairs = []
    for sentence in TRAINING_SENTENCES:
        real = piper.synthesize(sentence)
        slower = Audio(librosa.effects.time_stretch(real.samples, rate=1 / 1.4).astype(np.float32), real.sample_rate_hz)
        pairs.append((kokoro.synthesize(sentence, voice="jf_alpha"), slower))
    correction = EnvelopeCorrection.fit(pairs, neighbours=8, max_gain_db=12.0, smoothing_frames=3)
    assert len(np.unique(correction.features, axis=0)) == len(correction.features), "one row per synthetic frame"
    assert correction.typical_distance > 1e-3
    clone = kokoro.synthesize(NEW_SENTENCE, voice="jf_alpha")
    assert np.abs(correction.gains_db(clone)).mean() > 1.0


@pytest.fixture(scope="module")
def two_voices() -> tuple[KokoroTTS, PiperTTS]:
    return KokoroTTS(threads=1), PiperTTS(threads=1)


def test_offsets_from_a_parallel_recording_move_a_new_sentence_toward_that_voice(
    two_voices: tuple[KokoroTTS, PiperTTS],
) -> None:
    # Piper's male voice plays "the speaker", Kokoro's female pack the synthesizer: two real
    # engines saying the same words are a parallel recording with a known target voice.
    kokoro, piper = two_voices
    pairs = [(kokoro.synthesize(s, voice="jf_alpha"), piper.synthesize(s)) for s in TRAINING_SENTENCES]
    correction = EnvelopeCorrection.fit(
        pairs, neighbours=8, max_gain_db=12.0, smoothing_frames=3, alignment_features=WhisperFrames(layer=4)
    )
    assert correction.features.shape[0] > 300, "most frames of three sentences are aligned speech"
    np.testing.assert_allclose(correction.offsets_db.mean(axis=0), 0.0, atol=1e-3)

    clone = kokoro.synthesize(NEW_SENTENCE, voice="jf_alpha")
    gains = correction.gains_db(clone)
    assert np.abs(gains).max() <= 12.0 + 1e-6
    assert np.abs(gains).mean() > 1.0, "the stage does something"
    corrected = correction.apply(clone)
    assert corrected.num_samples == clone.num_samples

    encoder = SpeakerEncoder(threads=1)
    target = encoder.embed([b for _, b in pairs])
    before = float(encoder.embed(clone) @ target)
    after = float(encoder.embed(corrected) @ target)
    assert after > before + 0.01, (before, after)
    heard = SpeechRecognizer("base", threads=1).transcribe(corrected)
    assert word_error_rate(NEW_SENTENCE, heard) <= 0.1, heard


@pytest.mark.slow
def test_the_cloner_fits_the_stage_once_per_voice(tmp_path: Path, speaker_files: dict[str, list[Path]]) -> None:
    settings_on = ClonerSettings(threads=1, envelope_fit=True, voice_cache_dir=tmp_path, watermark=False)
    cloner = Cloner.from_settings(settings_on)
    files = speaker_files[sorted(speaker_files)[1]]
    voice = cloner.encode([str(f) for f in files[1:3]])
    stages: list[str] = []
    enrolled = cloner.enroll(voice, lambda fraction, stage: stages.append(stage))
    assert enrolled.envelope is not None
    assert "fitting the voice's envelope" in stages
    assert len(list(tmp_path.glob("envelope-*.npz"))) == 1

    plain = cloner.backend.synthesize(enrolled.voice, NEW_SENTENCE)
    shaped = cloner.synthesize(enrolled, NEW_SENTENCE)
    assert shaped.num_samples == plain.num_samples and not np.allclose(shaped.samples, plain.samples)

    # A new process (a fresh Cloner) reads the fitted stage from disk: no transcription, no synthesis.
    again = Cloner.from_settings(settings_on)
    assert again.envelope_fitter is not None

    def no_transcription(audio: Audio) -> str:
        raise AssertionError("the cached stage was fitted again")

    again.envelope_fitter.recognizer.transcribe = no_transcription  # type: ignore[method-assign]
    cached = again.enroll(again.encode([str(f) for f in files[1:3]]))
    assert cached.envelope is not None
    np.testing.assert_array_equal(cached.envelope.offsets_db, enrolled.envelope.offsets_db)
