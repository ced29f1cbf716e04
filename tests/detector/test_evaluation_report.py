"""The evaluation report's breakdown of false alarms by where the real speech was recorded."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from services.detector.evaluation import ModelScores, add_intervals, markdown, summarise, write_scores
from services.detector.manifest import ManifestRow
from services.detector.metrics import bootstrap_eers, equal_error_rate, percentile_interval


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


def test_bootstrap_of_separable_scores_stays_at_zero() -> None:
    labels = np.array([1] * 20 + [0] * 20)
    scores = labels + 0.1 * np.arange(40) / 40
    eers = bootstrap_eers(labels, [scores], resamples=50)
    assert eers.shape == (50, 1) and percentile_interval(eers[:, 0]) == (0.0, 0.0)
