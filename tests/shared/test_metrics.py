"""EER, the fixed-threshold report and calibration against brute-force definitions."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.metrics import binary_report, calibration, equal_error_rate


def brute_force_eer(labels: np.ndarray, scores: np.ndarray) -> float:
    best = (2.0, 1.0)
    for threshold in np.unique(np.r_[scores, np.inf]):
        false_alarm = np.mean(scores[labels == 0] >= threshold)
        miss = np.mean(scores[labels == 1] < threshold)
        gap = abs(false_alarm - miss)
        if gap < best[0]:
            best = (gap, (false_alarm + miss) / 2)
    return best[1]


def test_gaussian_classes_match_theory():
    rng = np.random.default_rng(1)
    labels = np.r_[np.zeros(20_000), np.ones(20_000)].astype(int)
    scores = np.r_[rng.normal(0, 1, 20_000), rng.normal(2, 1, 20_000)]
    eer, threshold = equal_error_rate(labels, scores)
    assert eer == pytest.approx(0.1587, abs=0.006)  # Phi(-1)
    assert threshold == pytest.approx(1.0, abs=0.05)


def test_perfect_and_inverted():
    assert equal_error_rate(np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.8, 0.9]))[0] == 0.0
    assert equal_error_rate(np.array([0, 0, 1, 1]), np.array([0.9, 0.8, 0.2, 0.1]))[0] == 1.0


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.floats(0, 1)), min_size=4, max_size=60))
def test_eer_close_to_brute_force(pairs):
    labels = np.array([int(fake) for fake, _ in pairs])
    scores = np.array([score for _, score in pairs])
    if labels.min() == labels.max():
        assert np.isnan(equal_error_rate(labels, scores)[0])
        return
    eer, _ = equal_error_rate(labels, scores)
    assert 0.0 <= eer <= 1.0
    # Interpolation may sit between two ROC points; the brute force takes the nearest one.
    step = 1.0 / min(np.sum(labels == 0), np.sum(labels == 1))
    assert abs(eer - brute_force_eer(labels, scores)) <= step + 1e-9


def test_binary_report_counts():
    labels = np.array([0, 0, 0, 1, 1, 1])
    scores = np.array([0.1, 0.6, 0.2, 0.7, 0.4, 0.9])
    report = binary_report(labels, scores, threshold=0.5)
    assert report.false_alarm_rate == pytest.approx(1 / 3)
    assert report.miss_rate == pytest.approx(1 / 3)
    assert report.f1 == pytest.approx(2 / 3)
    assert report.accuracy == pytest.approx(4 / 6)


def test_calibrated_scores_have_small_ece_and_miscalibrated_large():
    rng = np.random.default_rng(0)
    scores = rng.uniform(0, 1, 50_000)
    labels = (rng.uniform(0, 1, scores.size) < scores).astype(int)  # P(fake | score) = score
    assert calibration(labels, scores).expected_calibration_error < 0.01
    # Overconfident: the same outcomes, scores pushed to the ends.
    pushed = np.clip(0.5 + 2.0 * (scores - 0.5), 0.0, 1.0)
    assert calibration(labels, pushed).expected_calibration_error > 0.1


def test_reliability_table_by_hand():
    labels = np.array([0, 0, 1, 1, 1])
    scores = np.array([0.1, 0.15, 0.1, 0.9, 1.0])
    table = calibration(labels, scores, bins=2)
    assert table.mean_score == pytest.approx((0.35 / 3, 0.95))
    assert table.positive_share == pytest.approx((1 / 3, 1.0))
    assert table.weight == pytest.approx((0.6, 0.4))
    assert table.expected_calibration_error == pytest.approx(0.6 * abs(0.35 / 3 - 1 / 3) + 0.4 * 0.05)
    # Balanced: each real clip weighs 1/4, each fake 1/6; the low bin holds 1/2 + 1/6.
    balanced = calibration(labels, scores, bins=2, balanced=True)
    assert balanced.weight == pytest.approx((2 / 3, 1 / 3))
    assert balanced.positive_share[0] == pytest.approx((1 / 6) / (2 / 3))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.booleans(), st.floats(0, 1)), min_size=2, max_size=60),
    st.integers(1, 20),
)
def test_ece_is_a_weighted_gap(pairs, bins):
    labels = np.array([int(fake) for fake, _ in pairs])
    scores = np.array([score for _, score in pairs])
    table = calibration(labels, scores, bins=bins)
    assert sum(table.weight) == pytest.approx(1.0)
    assert 0.0 <= table.expected_calibration_error <= 1.0
    empty = [mean is None for mean in table.mean_score]
    assert all(weight == 0.0 for weight, is_empty in zip(table.weight, empty, strict=True) if is_empty)


@pytest.mark.parametrize(
    ("labels", "scores", "kwargs", "message"),
    [
        ([0, 1], [0.2, 1.2], {}, "probabilities in [0, 1]"),
        ([0, 1], [0.2], {}, "as many labels as scores"),
        ([1, 1], [0.2, 0.9], {"balanced": True}, "needs both classes"),
        ([0, 1], [0.2, 0.9], {"bins": 0}, "bins must be at least 1"),
    ],
)
def test_calibration_refuses_bad_input(labels, scores, kwargs, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        calibration(np.array(labels), np.array(scores), **kwargs)
