"""The vcfad watermark on real speech synthesis and real recordings, through real codecs."""

from __future__ import annotations

import csv
import hashlib
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from shared.audio import Audio, LoadPolicy, load_audio
from shared.bch import ExtendedBCHCode
from shared.tts.debian import EspeakNgTTS
from shared.watermark import (
    Watermarker,
    WatermarkKey,
    WatermarkKeyError,
    WatermarkParams,
    WatermarkSettings,
    WindowReading,
    make_payload,
    rademacher_tail_bound,
)

KEY = WatermarkKey(hashlib.sha256(b"vcfad test watermark key").digest())
#: The detector's loading: 16 kHz, silence trimmed, loudness normalised.
DETECTION_POLICY = LoadPolicy(min_duration_s=0.3)
TEXT = "The old lighthouse keeper climbed the stairs every evening to light the lamp for the ships."


@pytest.fixture(scope="module")
def watermarker() -> Watermarker:
    return Watermarker(KEY)


@pytest.fixture(scope="module")
def speech() -> Audio:
    """About 5 s of espeak-ng speech (22.05 kHz), trimmed and normalised as the cloner's output."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    return EspeakNgTTS().synthesize(TEXT).trim_silence().normalize_loudness(-23.0)


def detected(watermarker: Watermarker, audio: Audio) -> tuple[float, int | None, list[tuple[float, float]]]:
    """(share of windows found, payload, found windows) as the detector reads ``audio``."""
    prepared = load_audio(audio.to_wav_bytes(), DETECTION_POLICY)
    report = watermarker.detect(prepared)
    result = report.to_result()
    share = len(result.windows) / len(report.windows)
    return share, report.payload, [(w.start_s, w.end_s) for w in result.windows]


@pytest.mark.parametrize("rate_hz", [16_000, 22_050, 24_000, 48_000])
def test_embed_and_read_at_every_rate(watermarker: Watermarker, speech: Audio, rate_hz: int) -> None:
    clip = speech.resample(rate_hz)
    payload = make_payload(KEY, f"job-{rate_hz}")
    marked = watermarker.embed(clip, payload)
    assert marked.sample_rate_hz == rate_hz and marked.num_samples == clip.num_samples
    # Inaudible by design: a few dB of gain per cell, far below the speech.
    difference = marked.samples.astype(np.float64) - clip.samples
    assert 10 * np.log10(np.sum(difference**2) / np.sum(clip.samples.astype(np.float64) ** 2)) < -9.0
    share, read, _ = detected(watermarker, marked)
    assert share >= 0.9
    assert read == payload and read >> 16 == KEY.key_id
    # Unmarked, the same speech carries nothing.
    share, read, _ = detected(watermarker, clip)
    assert share == 0.0 and read is None


@pytest.mark.parametrize("rate_hz", [8_000, 16_000, 48_000])
def test_any_length_embeds_to_the_same_length(watermarker: Watermarker, speech: Audio, rate_hz: int) -> None:
    # Around one embedding window (32 ms): shorter clips are padded for the transform, then cropped.
    window = 2 * round(watermarker.params.embed_window_s * rate_hz / 2)
    clip = speech.resample(rate_hz)
    for length in (0, 1, 100, window - 1, window, window + 1):
        part = Audio(clip.samples[:length], rate_hz)
        marked = watermarker.embed(part, make_payload(KEY, "short"))
        assert marked.num_samples == length and np.all(np.isfinite(marked.samples))
    silence = Audio(np.zeros(rate_hz, dtype=np.float32), rate_hz)
    # A gain on nothing adds nothing.
    assert not np.any(watermarker.embed(silence, make_payload(KEY, "silence")).samples)


def test_another_key_reads_nothing(watermarker: Watermarker, speech: Audio) -> None:
    marked = watermarker.embed(speech, make_payload(KEY, "job"))
    other = Watermarker(WatermarkKey(hashlib.sha256(b"someone else's key").digest()))
    share, read, _ = detected(other, marked)
    assert share == 0.0 and read is None


def test_a_spliced_clip_shows_where(watermarker: Watermarker, speech: Audio) -> None:
    """Unmarked speech, then 4 s of marked speech, then unmarked again: the windows say where."""
    clip = speech.resample(16_000)
    unmarked = clip.crop(0.0, 3.0)
    marked = watermarker.embed(clip, make_payload(KEY, "splice")).crop(0.5, 4.0)
    spliced = Audio(np.concatenate([unmarked.samples, marked.samples, unmarked.samples]), 16_000)
    report = watermarker.detect(spliced)
    found = report.found_windows
    assert report.present and found, "the marked part was not found"
    # Every window found overlaps the marked stretch (3–7 s); wholly unmarked windows never pass.
    assert all(w.end_s > 3.0 and w.start_s < 7.0 for w in found)
    inside = [w for w in report.windows if w.start_s >= 3.0 and w.end_s <= 7.0]
    assert sum(w.z >= report.threshold_z for w in inside) >= len(inside) - 1


def _ffmpeg(audio: Audio, codec: list[str], container: str) -> Audio:
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg is not installed")
    base = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-f"]
    encoded = subprocess.run(
        [*base, "wav", "-i", "-", *codec, "-f", container, "-"],
        input=audio.to_wav_bytes(),
        capture_output=True,
        check=True,
    ).stdout
    assert encoded
    return load_audio(
        encoded, LoadPolicy(sample_rate_hz=audio.sample_rate_hz, trim_silence=False, normalize_loudness=False)
    )


@pytest.mark.parametrize(
    "attack",
    [
        "mp3 64 kbps",
        "opus 24 kbps",
        "resample 8 kHz",
        "speed +8 %",
        "tempo -8 % (pitch kept)",
        "gain -6 dB",
        "white noise 20 dB",
    ],
)
def test_survives_attacks(watermarker: Watermarker, speech: Audio, attack: str) -> None:
    clip = speech.resample(24_000)
    payload = make_payload(KEY, attack)
    marked = watermarker.embed(clip, payload)
    if attack == "mp3 64 kbps":
        attacked = _ffmpeg(marked, ["-c:a", "libmp3lame", "-b:a", "64k"], "mp3")
    elif attack == "opus 24 kbps":
        attacked = _ffmpeg(marked, ["-c:a", "libopus", "-b:a", "24k"], "ogg")
    elif attack == "white noise 20 dB":
        power = float(np.mean(marked.samples.astype(np.float64) ** 2))
        noise = np.random.default_rng(20).normal(scale=np.sqrt(power / 100.0), size=marked.num_samples)
        attacked = Audio((marked.samples + noise).astype(np.float32), 24_000)
    elif attack == "resample 8 kHz":
        attacked = marked.resample(8_000).resample(24_000)
    elif attack == "speed +8 %":
        attacked = Audio(marked.samples, round(24_000 * 1.08)).resample(24_000)
    elif attack == "tempo -8 % (pitch kept)":  # WSOLA: time stretches, frequency does not
        attacked = _ffmpeg(marked, ["-filter:a", "atempo=0.92", "-c:a", "pcm_s16le"], "wav")
    else:
        attacked = Audio(marked.samples * np.float32(10 ** (-6 / 20)), 24_000)
    share, read, _ = detected(watermarker, attacked)
    assert share >= 0.8, f"found in {share:.0%} of the windows after {attack}"
    # The coded payload reads right after each of these (its z is 11–19 here against 6.12,
    # with the payload bound to the speech).
    assert read == payload, f"payload {read} read after {attack}, {payload} embedded"


def test_a_payload_copied_onto_other_speech_does_not_read(watermarker: Watermarker, speech: Audio) -> None:
    """The strongest copy without the key: a forger who knew the exact signs the embedder gave
    every cell of every period of a clone imprints them on another recording with the design's
    own embedder. The sync pattern is found (it is the same in every clip), but the payload cells
    were bound to the clone's content, so the payload must not read; embedded properly, it does."""
    payload = make_payload(KEY, "copied")
    clone = watermarker.embed(speech, payload)
    coded = watermarker.coded_bits(payload)
    exact = np.stack([watermarker.pattern.signs(coded, period) for period in watermarker.period_content(clone)])
    other = EspeakNgTTS(voice="en-gb", variant="f3").synthesize(
        "Before the storm arrived, the fishermen pulled their boats high onto the pebbles of the beach."
    )
    other = other.resample(speech.sample_rate_hz).trim_silence().normalize_loudness(-23.0)
    share, read, _ = detected(watermarker, watermarker.embed_pattern(other, exact))
    assert share >= 0.8, "the copied sync pattern should still be found"
    assert read is None, f"payload {read:06x} read from a copy"
    assert detected(watermarker, watermarker.embed(other, payload))[1] == payload
    with pytest.raises(ValueError, match=r"signs must be \(periods ≥ 1, 50, 48\); got \(50, 48\)"):
        watermarker.embed_pattern(other, exact[0])


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    gain_db=st.floats(-40.0, 40.0),
    band_db=st.lists(st.floats(-5.0, 5.0), min_size=48, max_size=48),
    moment_db=st.lists(st.floats(-5.0, 5.0), min_size=50, max_size=50),
)
def test_content_bits_ignore_gain_filters_and_the_loudness_envelope(
    watermarker: Watermarker, seed: int, gain_db: float, band_db: list[float], moment_db: list[float]
) -> None:
    """A cell's content bit depends on how the spectrum moves in time, not on a gain, a fixed
    filter (a level per band) or the broadband loudness envelope (a level per moment): these
    survive every channel a clip goes through and are what two utterances share, so they must
    project to nothing (within the floor's reach: here every level is within 25 dB)."""
    levels = np.random.default_rng(seed).uniform(-15.0, 0.0, size=(50, 48))
    changed = levels + gain_db + np.array(band_db)[None, :] + np.array(moment_db)[:, None]
    params = watermarker.params
    np.testing.assert_allclose(
        watermarker.pattern.content_signs(changed, params), watermarker.pattern.content_signs(levels, params), atol=1e-9
    )


def test_scales_are_read_independently_of_each_other(watermarker: Watermarker, speech: Audio) -> None:
    """All searched scales are folded in one pass; each must come out as if read alone."""
    marked = watermarker.embed(speech.resample(16_000), make_payload(KEY, "scales"))
    frames_db = watermarker.log_spectrogram(marked)
    first, count = watermarker.window_frames(frames_db.shape[0])[1]
    window = frames_db[first : first + count]
    scales = [(1.0, 1.0), (1.05, 1.05), (0.93, 1.0)]
    together = watermarker._phase_residuals(window, first, scales)
    for index, scale in enumerate(scales):
        np.testing.assert_array_equal(together[index], watermarker._phase_residuals(window, first, [scale])[0])


def test_informed_embedding_delivers_the_contrast_a_plain_pass_loses(speech: Audio) -> None:
    # One STFT pass smears cells near the transform's resolution into their neighbours; the
    # correction rounds must give the detector a clearly stronger watermark at the same design gain.
    plain = Watermarker(KEY, WatermarkParams(embed_iterations=0))
    informed = Watermarker(KEY)
    clip = speech.resample(16_000)
    payload = make_payload(KEY, "informed")
    prepared = [load_audio(w.embed(clip, payload).to_wav_bytes(), DETECTION_POLICY) for w in (plain, informed)]
    plain_z, informed_z = (np.median([r.z for r in informed.detect(audio).windows]) for audio in prepared)
    assert informed_z > plain_z + 2.0, (plain_z, informed_z)


def test_real_speech_is_not_marked(watermarker: Watermarker, shared_data_dir: Path) -> None:
    """Real recordings (the FoR real clips; LibriSpeech is reserved) give no window above threshold."""
    folder = shared_data_dir / "external-dev" / "fake-or-real-sample"
    with (folder / "manifest.tsv").open(newline="") as file:
        rows = [row for row in csv.DictReader(file, delimiter="\t") if row["label"] == "bonafide"][:40]
    assert rows
    windows = 0
    for row in rows:
        report = watermarker.detect(load_audio(folder / row["path"], DETECTION_POLICY))
        windows += len(report.windows)
        assert not report.present and report.payload is None, row["path"]
        assert max(w.z for w in report.windows) < report.threshold_z
    assert windows >= 40


def test_payload_and_key_checks(tmp_path: Path) -> None:
    watermarker = Watermarker(KEY)
    with pytest.raises(ValueError, match="24 bits"):
        watermarker.coded_bits(1 << 24)
    with pytest.raises(ValueError, match="Hz"):
        watermarker.embed(Audio(np.zeros(4000, dtype=np.float32), 4_000), make_payload(KEY, "rate"))
    other_id = (KEY.key_id + 1) % 256
    with pytest.raises(ValueError, match="key id"):
        watermarker.coded_bits(other_id << 16 | 0xBEEF)
    # Embedded: the 16-bit job hash's codeword (the key id is implied by the key).
    payload = KEY.key_id << 16 | 0xBEEF
    bits = watermarker.coded_bits(payload)
    assert len(bits) == 64 and np.array_equal(bits, ExtendedBCHCode().encode(0xBEEF))
    # The key: from the environment's text, else a key file created on first use (mode 0600).
    assert WatermarkKey.from_text(KEY.secret.hex()).key_id == KEY.key_id
    path = tmp_path / "var" / "watermark.key"
    created = WatermarkKey.from_settings(WatermarkSettings(key_file=path))
    assert path.stat().st_mode & 0o777 == 0o600
    assert WatermarkKey.from_settings(WatermarkSettings(key_file=path)) == created
    with pytest.raises(WatermarkKeyError, match="no watermark key"):
        WatermarkKey.from_settings(WatermarkSettings(key_file=tmp_path / "none.key", create_key=False))
    with pytest.raises(WatermarkKeyError, match="at least 16"):
        WatermarkKey.from_text("abcd")
    with pytest.raises(WatermarkKeyError, match="neither hex nor base64"):
        WatermarkKey.from_text("not a key!")
    assert WatermarkParams().threshold_z() > 5.0


@settings(max_examples=60, deadline=None)
@given(
    weights=st.lists(st.floats(min_value=0.01, max_value=10.0), min_size=1, max_size=14),
    z=st.floats(min_value=-1.0, max_value=4.0),
)
@example(weights=[1.0, 1.0], z=float(np.sqrt(2.0)))  # where the constant is attained: P = 1/4
def test_tail_bound_holds_for_every_weighted_sign_sum(weights: list[float], z: float) -> None:
    """The presence threshold rests on this bound: it must dominate the exact tail of a normalised
    weighted sum of random signs (all 2^n sign patterns enumerated), whatever the weights."""
    a = np.asarray(weights) / np.sqrt(np.sum(np.square(weights)))
    signs = 1.0 - 2.0 * ((np.arange(2 ** len(a))[:, None] >> np.arange(len(a))) & 1)
    exact = float(np.mean(signs @ a >= z - 1e-12))
    assert rademacher_tail_bound(z) >= exact - 1e-12  # equality where the constant is attained


def test_payload_threshold_is_the_bound_over_every_codeword(watermarker: Watermarker, speech: Audio) -> None:
    """A payload is reported only when its codeword's z passes the union bound over all 65,536
    codewords; read as if found, an unmarked clip's windows give no payload."""
    params = WatermarkParams()
    threshold = params.payload_threshold_z()
    assert (1 << 16) * rademacher_tail_bound(threshold) == pytest.approx(params.payload_false_rate)
    report = watermarker.detect(speech.resample(16_000))
    assert not report.present
    payload, z = watermarker.decode_payload(report.windows)  # every window, as if all were found
    assert payload is None and 0.0 < z < threshold, z


def test_the_search_is_configured_from_the_environment(monkeypatch: pytest.MonkeyPatch, speech: Audio) -> None:
    """``VCFAD_WATERMARK_MAX_SPEED_CHANGE`` / ``..._TEMPO_CHANGE`` set the detection search: with
    both 0 one scale is searched (100 tests a window, a lower threshold) and an unchanged clone is
    still read; a value out of range is refused by name."""
    monkeypatch.setenv("VCFAD_WATERMARK_KEY", KEY.secret.hex())
    monkeypatch.setenv("VCFAD_WATERMARK_MAX_SPEED_CHANGE", "0")
    monkeypatch.setenv("VCFAD_WATERMARK_MAX_TEMPO_CHANGE", "0")
    narrow = Watermarker.from_settings()
    assert narrow.key == KEY and narrow.params.tests_per_window() == 100
    assert narrow.params.threshold_z() < WatermarkParams().threshold_z() - 0.5
    payload = make_payload(KEY, "narrow")
    share, read, _ = detected(narrow, Watermarker(KEY).embed(speech, payload))
    assert share == 1.0 and read == payload
    monkeypatch.setenv("VCFAD_WATERMARK_MAX_TEMPO_CHANGE", "0.5")
    with pytest.raises(ValidationError, match="max_tempo_change"):
        Watermarker.from_settings()


def test_threshold_is_the_bound_at_the_false_positive_rate() -> None:
    """Tests × bound at the threshold equals the configured rate; the Gaussian bound sits below
    Hoeffding's there, so the threshold is lower than Hoeffding's sqrt(2 ln(tests / rate))."""
    params = WatermarkParams()
    threshold = params.threshold_z()
    assert params.tests_per_window() * rademacher_tail_bound(threshold) == pytest.approx(params.false_positive_rate)
    hoeffding = np.sqrt(2.0 * np.log(params.tests_per_window() / params.false_positive_rate))
    assert 5.0 < threshold < hoeffding - 0.2


def test_presence_is_bounded_per_recording_and_the_windows_give_its_extent(watermarker: Watermarker) -> None:
    """A recording is called marked when its best window passes the union bound over all its
    windows and tests (so a long unmarked recording is not called marked more often than a short
    one); once it is, every window past one window's bound is reported. A window between the two
    thresholds alone marks nothing (a CI run's random key met such a window on real LibriSpeech)."""
    params = watermarker.params
    window, presence = params.threshold_z(), params.presence_threshold_z(30)
    assert params.presence_threshold_z(1) == window < presence < params.presence_threshold_z(120)
    tests = params.tests_per_window() * 30
    assert tests * rademacher_tail_bound(presence) == pytest.approx(params.recording_false_positive_rate)
    cells = int(np.sum(watermarker.pattern.role >= 0))

    def reading(start_s: float, z: float) -> WindowReading:
        return WindowReading(start_s, start_s + 1.0, z, 1.0, 1.0, np.zeros(cells))

    between = (window + presence) / 2
    quiet = [reading(0.5 * i, 2.0) for i in range(28)]
    assert watermarker.verdict([]).confidence == 0.0 and not watermarker.verdict([]).present
    lone = watermarker.verdict([*quiet, reading(14.0, between), reading(14.5, 3.0)])
    assert not lone.present and lone.found_windows == [] and lone.payload is None
    assert lone.presence_threshold_z == pytest.approx(presence)
    assert lone.confidence < 1.0 - params.recording_false_positive_rate  # the same bound, as a p-value
    marked = watermarker.verdict([*quiet, reading(14.0, between), reading(14.5, presence + 0.01)])
    assert marked.present and [w.start_s for w in marked.found_windows] == [14.0, 14.5]
    assert marked.confidence >= 1.0 - params.recording_false_positive_rate
    assert [(w.start_s, w.end_s) for w in marked.to_result().windows] == [(14.0, 15.0), (14.5, 15.5)]
