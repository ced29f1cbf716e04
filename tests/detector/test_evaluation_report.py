"""The evaluation report's breakdown of false alarms by where the real speech was recorded."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from services.detector.evaluation.evaluate import (
    ModelScores,
    add_intervals,
    markdown,
    summarise,
    write_reports,
    write_scores,
)
from services.detector.training.manifest import ManifestRow
from shared.metrics import bootstrap_eers, equal_error_rate, percentile_interval


def _row(label: str, source: str = "", system: str = "") -> ManifestRow:
    extra = {"source": source} if source else {}
    return ManifestRow(path=Path("x.wav"), label=label, system=system or label, extra=extra)  # type: ignore[arg-type]


def test_per_real_source_scores_every_fake_against_each_channel() -> None:
    rows = [_row("spoof", "vctk:p225_001.wav", "tts")] * 3
    rows += [_row("bonafide", f"librispeech/train-clean-100/103-1240-000{i}.flac@0.62") for i in range(2)]
    rows += [_row("bonafide", f"librispeech/test-other/1688/1688-142285-000{i}.flac@1.00") for i in range(2)]
    rows += [_row("bonafide", system="FoR sample (testing/real)")]
    scores = np.array([0.9, 0.8, 0.4, 0.1, 0.2, 0.85, 0.3, 0.05])
    summary = summarise(ModelScores(model="m", threshold=0.5, rows=rows, scores=scores, failed=[]))
    sources = summary["per_real_source"]
    assert set(sources) == {"librispeech/train-clean-100", "librispeech/test-other", "FoR sample (testing/real)"}
    assert sources["librispeech/train-clean-100"]["eer_vs_all_fakes"] == 0.0  # all below the fakes
    other = sources["librispeech/test-other"]
    assert other["count"] == 2 and other["false_alarm_rate"] == pytest.approx(0.5)
    expected = equal_error_rate(np.array([1, 1, 1, 0, 0]), np.array([0.9, 0.8, 0.4, 0.85, 0.3]))[0]
    assert other["eer_vs_all_fakes"] == pytest.approx(expected) and expected > 0
    assert "| librispeech/test-other (2) | EER " in markdown([summary], ["m.tsv"])


def test_eer_intervals_are_paired_and_cover_the_estimate(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    labels = np.repeat([1, 0], 200)
    first = labels + rng.normal(0, 0.8, len(labels))  # overlapping classes: EER ~ 27 %
    second = first + rng.normal(0, 0.3, len(labels))  # the same model, slightly perturbed
    rows = [_row("spoof" if label else "bonafide", system="s") for label in labels]
    rows = [dataclasses.replace(row, path=Path(f"clip{i}.wav")) for i, row in enumerate(rows)]
    results = [
        ModelScores(model=name, threshold=0.5, rows=rows, scores=scores, failed=[])
        for name, scores in (("a", first), ("b", second), ("a-again", first.copy()))
    ]
    summaries = [summarise(result) for result in results]
    add_intervals(results, summaries, resamples=300)
    for summary in summaries:
        low, high = summary["overall"]["eer_interval"]["bounds"]
        assert low < summary["overall"]["eer"] < high and high - low > 0.03  # 400 clips: a few points wide
    assert "versus_first" not in summaries[0]
    assert summaries[2]["versus_first"]["bounds"] == (0.0, 0.0)  # identical scores: no difference, ever
    low, high = summaries[1]["versus_first"]["bounds"]
    # Paired: the difference is known more tightly than either EER (unpaired, it would be ~1.4x wider).
    single_low, single_high = summaries[1]["overall"]["eer_interval"]["bounds"]
    assert high - low < single_high - single_low
    text = markdown(summaries, ["m.tsv"])
    assert "- b: " in text and "minus a: " in text
    write_scores(results, tmp_path / "scores.tsv")
    lines = (tmp_path / "scores.tsv").read_text().splitlines()
    assert lines[0] == "path\tlabel\tsystem\ta\tb\ta-again" and len(lines) == 401
    assert float(lines[1].split("\t")[3]) == pytest.approx(first[0], abs=1e-6)


def test_each_real_source_gets_its_own_paired_interval() -> None:
    """A model that differs from the first only on one channel's real clips: that source's paired
    difference is away from zero, the other source's is exactly zero."""
    rng = np.random.default_rng(5)
    fakes = [_row("spoof", f"vctk:p{i}.wav", "tts") for i in range(120)]
    clean = [_row("bonafide", f"librispeech/train-clean-100/{i}-1-0001.flac@0.5") for i in range(120)]
    other = [_row("bonafide", f"librispeech/test-other/{i}/{i}-1-0001.flac@0.5") for i in range(120)]
    rows = [dataclasses.replace(row, path=Path(f"c{i}.wav")) for i, row in enumerate(fakes + clean + other)]
    first = np.concatenate([rng.normal(1.0, 0.7, 120), rng.normal(0.0, 0.7, 240)])
    second = first.copy()
    second[240:] += 0.6  # other-channel real speech now looks faker to the second model
    results = [
        ModelScores(model=name, threshold=0.5, rows=rows, scores=scores, failed=[])
        for name, scores in (("a", first), ("b", second))
    ]
    summaries = [summarise(result) for result in results]
    add_intervals(results, summaries, resamples=300)
    b_sources = summaries[1]["per_real_source"]
    assert b_sources["librispeech/train-clean-100"]["versus_first"]["bounds"] == (0.0, 0.0)
    worse = b_sources["librispeech/test-other"]["versus_first"]
    assert worse["eer_difference"] > 0.1 and worse["bounds"][0] > 0.0  # worse beyond the noise
    low, high = summaries[0]["per_real_source"]["librispeech/test-other"]["eer_interval"]["bounds"]
    assert low < summaries[0]["per_real_source"]["librispeech/test-other"]["eer_vs_all_fakes"] < high
    assert "versus_first" not in summaries[0]["per_real_source"]["librispeech/test-other"]
    text = markdown(summaries, ["m.tsv"])
    assert "- librispeech/test-other, b: " in text and "minus a: +" in text


def test_bootstrap_of_separable_scores_stays_at_zero() -> None:
    labels = np.array([1] * 20 + [0] * 20)
    scores = labels + 0.1 * np.arange(40) / 40
    eers = bootstrap_eers(labels, [scores], resamples=50)
    assert eers.shape == (50, 1) and percentile_interval(eers[:, 0]) == (0.0, 0.0)


def test_bootstrap_resamples_recordings_not_their_windows() -> None:
    """Ten windows of each recording are not ten samples: drawn one by one, the interval is about
    sqrt(10) times too narrow; drawn by recording, it is that of the recordings themselves."""
    rng = np.random.default_rng(3)
    recordings = 60
    labels = np.repeat(np.arange(2 * recordings) % 2, 10)
    per_recording = rng.normal(size=2 * recordings) + np.arange(2 * recordings) % 2 * 1.0
    scores = np.repeat(per_recording, 10) + rng.normal(scale=0.01, size=20 * recordings)
    groups = [f"r{index // 10}" for index in range(20 * recordings)]
    by_clip = bootstrap_eers(labels, [scores], resamples=300)[:, 0]
    by_recording = bootstrap_eers(labels, [scores], groups=groups, resamples=300)[:, 0]
    alone = bootstrap_eers(np.arange(2 * recordings) % 2, [per_recording], resamples=300)[:, 0]
    assert by_recording.std() > 2 * by_clip.std()
    assert by_recording.std() == pytest.approx(alone.std(), rel=0.35)
    # One clip per group is the clip-level bootstrap, draw for draw.
    singles = [str(index) for index in range(len(labels))]
    assert np.array_equal(
        bootstrap_eers(labels, [scores], groups=singles, resamples=20), bootstrap_eers(labels, [scores], resamples=20)
    )


def test_recording_group_joins_a_recordings_windows() -> None:
    from services.detector.evaluation.evaluate import recording_group
    from services.detector.training.manifest import ManifestRow

    def row(path: str, label: str, source: str) -> ManifestRow:
        return ManifestRow(path=Path(path), label=label, extra={"source": source})  # type: ignore[arg-type]

    a = row("a.wav", "bonafide", "librispeech/test-other/1688/1688-1.flac@0.15")
    b = row("b.wav", "bonafide", "librispeech/test-other/1688/1688-1.flac@3.20")
    copy = row("c.wav", "spoof", "librispeech/test-other/1688/1688-1.flac@1.00")
    text = row("d.wav", "spoof", "vctk:p225_001.wav|p226_002.wav")
    assert recording_group(a) == recording_group(b) != recording_group(copy)
    assert recording_group(text) != recording_group(row("e.wav", "spoof", "vctk:p225_001.wav|p226_002.wav"))


def test_a_set_of_real_speech_only_reports_its_false_alarms_and_valid_json(tmp_path: Path) -> None:
    # Real traffic only (no fakes): EER, F1 and the miss rate are undefined, not 0 and not NaN.
    rows = [dataclasses.replace(_row("bonafide", system="studio"), path=Path(f"p{i}.wav")) for i in range(4)]
    result = ModelScores(model="m", threshold=0.5, rows=rows, scores=np.array([0.9, 0.6, 0.2, 0.1]), failed=[])
    summaries = [summarise(result)]
    add_intervals([result], summaries)
    (tmp_path / "det.png").write_bytes(b"an earlier run's curve")
    write_reports([result], summaries, ["studio.tsv"], None, tmp_path)

    def no_nan(token: str) -> float:
        raise AssertionError(f"report.json holds {token}")

    report = json.loads((tmp_path / "report.json").read_text(), parse_constant=no_nan)
    overall = report["models"][0]["overall"]
    assert overall["false_alarm_rate"] == pytest.approx(0.5)
    assert overall["eer"] is None and overall["f1"] is None and overall["miss_rate"] is None
    text = (tmp_path / "report.md").read_text()
    assert "| m | 4 | – | – | 50.0 % | 50.0 % | – | 0.500 |" in text and "nan" not in text
    assert "| studio (4) | false alarms 50.0 % |" in text
    assert not (tmp_path / "det.png").exists()  # no DET curve without both classes
    assert report["models"][0]["calibration"] is None and "Calibration" not in text


def test_two_class_report_states_calibration_and_draws_the_reliability_diagram(tmp_path: Path) -> None:
    # Overconfident scores: a tenth of each class sits at the wrong end, scored 0.02 / 0.98.
    labels = np.repeat([1, 0], 50)
    scores = np.where(labels == 1, 0.98, 0.02)
    scores[:5], scores[50:55] = 0.02, 0.98
    rows = [
        dataclasses.replace(_row("spoof" if label else "bonafide"), path=Path(f"c{i}.wav"))
        for i, label in enumerate(labels)
    ]
    result = ModelScores(model="m", threshold=0.5, rows=rows, scores=scores, failed=[])
    summaries = [summarise(result)]
    write_reports([result], summaries, ["m.tsv"], None, tmp_path)
    entry = json.loads((tmp_path / "report.json").read_text())["models"][0]["calibration"]
    # Each end's bin states 2 % (98 %) fake and holds 10 % (90 %) fakes: ECE = 8 points.
    assert entry["balanced"]["expected_calibration_error"] == pytest.approx(0.08)
    assert entry["as_scored"]["expected_calibration_error"] == pytest.approx(0.08)
    assert (
        "Calibration: " in (tmp_path / "report.md").read_text()
        and "m 8.0 % / 8.0 %" in (tmp_path / "report.md").read_text()
    )
    assert (tmp_path / "reliability.png").stat().st_size > 1000
