"""The evaluation report's breakdown of false alarms by where the real speech was recorded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from services.detector.evaluation import ModelScores, markdown, summarise
from services.detector.manifest import ManifestRow
from services.detector.metrics import equal_error_rate


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
