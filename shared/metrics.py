"""Binary decision metrics (EER, F1, bootstrap intervals) of the detector and the speaker judge.

Convention everywhere: label 1 = the positive class (a fake for the detector, a same-speaker
trial for the judge), and a higher score means more likely positive."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from sklearn.metrics import roc_curve


def equal_error_rate(labels: np.ndarray, scores: np.ndarray) -> tuple[float, float]:
    """Equal error rate and the score threshold where it occurs.

    The EER is where the false-alarm rate (real called fake) equals the miss rate (fake called
    real); it is interpolated between the two ROC points that bracket the crossing.

    Returns
    -------
    eer, threshold
        ``eer`` in [0, 1]; NaN when only one class is present.
    """
    labels = np.asarray(labels, dtype=int)
    scores = np.asarray(scores, dtype=float)
    if labels.min(initial=1) == labels.max(initial=0):
        return float("nan"), float("nan")
    false_alarm, hit, thresholds = roc_curve(labels, scores)
    # miss - false_alarm falls from +1 (threshold above every score) to -1; find the crossing
    # and interpolate linearly between the two ROC points around it.
    gap = (1.0 - hit) - false_alarm
    after = int(np.flatnonzero(gap <= 0)[0])
    before = max(after - 1, 0)
    weight = gap[before] / (gap[before] - gap[after]) if gap[before] != gap[after] else 0.0
    eer = false_alarm[before] + weight * (false_alarm[after] - false_alarm[before])
    # sklearn's first threshold is +inf: interpolate only between finite ones.
    low, high = thresholds[after], thresholds[before] if np.isfinite(thresholds[before]) else thresholds[after]
    threshold = high + weight * (low - high)
    return float(eer), float(threshold)


@dataclass(frozen=True)
class BinaryReport:
    """Scores of one set at one fixed threshold (never tuned on the set it reports)."""

    count: int
    fake_count: int
    real_count: int
    eer: float
    eer_threshold: float
    threshold: float
    f1: float
    accuracy: float
    false_alarm_rate: float
    miss_rate: float

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def binary_report(labels: np.ndarray, scores: np.ndarray, threshold: float) -> BinaryReport:
    """EER (threshold-free) plus F1/accuracy/false-alarm/miss at the given fixed ``threshold``."""
    labels = np.asarray(labels, dtype=int)
    scores = np.asarray(scores, dtype=float)
    predicted = scores >= threshold
    fake = labels == 1
    real = ~fake
    true_positive = int(np.sum(predicted & fake))
    precision_den = int(np.sum(predicted))
    recall_den = int(np.sum(fake))
    if recall_den:
        precision = true_positive / precision_den if precision_den else 0.0
        recall = true_positive / recall_den
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    else:
        f1 = float("nan")  # no fake clips: nothing to recall, F1 is undefined (not 0)
    eer, eer_threshold = equal_error_rate(labels, scores)
    return BinaryReport(
        count=len(labels),
        fake_count=int(fake.sum()),
        real_count=int(real.sum()),
        eer=eer,
        eer_threshold=eer_threshold,
        threshold=float(threshold),
        f1=float(f1),
        accuracy=float(np.mean(predicted == fake)) if len(labels) else float("nan"),
        false_alarm_rate=float(np.mean(predicted[real])) if real.any() else float("nan"),
        miss_rate=float(np.mean(~predicted[fake])) if fake.any() else float("nan"),
    )


def det_curve(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false-alarm rate, miss rate) points of the detection-error-tradeoff curve."""
    false_alarm, hit, _ = roc_curve(np.asarray(labels, dtype=int), np.asarray(scores, dtype=float))
    return false_alarm, 1.0 - hit


def bootstrap_eers(
    labels: np.ndarray,
    score_sets: list[np.ndarray],
    *,
    groups: Sequence[str] | None = None,
    resamples: int = 1000,
    seed: int = 0,
) -> np.ndarray:
    """EERs of several models' scores of the same clips on the same bootstrap resamples.

    Real and fake clips are resampled separately (with replacement, each class keeping its
    count of units), so every resample has both classes. Using the same resamples for every
    model makes differences between models paired: a clip that is hard for all of them moves
    all their EERs together.

    ``groups`` (one key per clip): resample whole groups instead of clips. Windows cut from one
    recording are not independent samples; drawing them one by one makes the interval too narrow.

    Returns
    -------
    numpy.ndarray
        Shape (resamples, len(score_sets)).
    """
    labels = np.asarray(labels, dtype=int)
    keys = [str(index) for index in range(len(labels))] if groups is None else [str(key) for key in groups]
    units: list[list[np.ndarray]] = []
    for label in (1, 0):
        members: dict[str, list[int]] = {}
        for index in np.flatnonzero(labels == label):
            members.setdefault(keys[index], []).append(int(index))
        units.append([np.array(indices) for indices in members.values()])
    score_arrays = [np.asarray(scores) for scores in score_sets]  # once, not per resample
    rng = np.random.default_rng(seed)
    eers = np.empty((resamples, len(score_sets)))
    for row in range(resamples):
        picked = np.concatenate(
            [
                np.concatenate([class_units[i] for i in rng.integers(0, len(class_units), len(class_units))])
                for class_units in units
            ]
        )
        for column, scores in enumerate(score_arrays):
            eers[row, column] = equal_error_rate(labels[picked], scores[picked])[0]
    return eers


def percentile_interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """The central ``level`` share of ``values`` (a bootstrap percentile interval)."""
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


@dataclass(frozen=True)
class Calibration:
    """How well scores read as probabilities of the positive class (a reliability table).

    Scores are grouped into ``bins`` equal-width bins over [0, 1]. In each bin the mean score is
    set beside the observed share of positives; the expected calibration error (ECE) is the mean
    absolute gap, weighted by each bin's share of the clips.

    ``balanced``: real and fake clips are weighted so each class counts half. A detector trained
    on balanced classes states probabilities for even odds; on a set with three fakes per real
    clip, the unweighted table also measures the set's class ratio, not only the model.
    """

    bin_edges: tuple[float, ...]
    mean_score: tuple[float | None, ...]  # None: no clip in that bin
    positive_share: tuple[float | None, ...]
    weight: tuple[float, ...]  # each bin's share of the (weighted) clips, summing to 1
    expected_calibration_error: float
    balanced: bool

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def calibration(labels: np.ndarray, scores: np.ndarray, *, bins: int = 10, balanced: bool = False) -> Calibration:
    """Reliability table and ECE of probability ``scores`` (in [0, 1]) against binary ``labels``.

    Raises
    ------
    ValueError
        If ``bins`` < 1, the arrays differ in length or are empty, a score lies outside [0, 1],
        or ``balanced`` is asked for with only one class present.
    """
    labels = np.asarray(labels, dtype=int)
    scores = np.asarray(scores, dtype=float)
    if bins < 1:
        raise ValueError(f"bins must be at least 1, got {bins}")
    if labels.shape != scores.shape or labels.size == 0:
        raise ValueError(f"need as many labels as scores, at least one: got {labels.size} and {scores.size}")
    if scores.min() < 0.0 or scores.max() > 1.0 or np.isnan(scores).any():
        raise ValueError("scores must be probabilities in [0, 1]")
    positives = labels == 1
    if balanced:
        if positives.all() or not positives.any():
            raise ValueError("a balanced reliability table needs both classes")
        sample_weight = np.where(positives, 0.5 / positives.sum(), 0.5 / (~positives).sum())
    else:
        sample_weight = np.full(labels.size, 1.0 / labels.size)
    edges = np.linspace(0.0, 1.0, bins + 1)
    # Bin i holds [edge_i, edge_i+1); a score of exactly 1 goes to the last bin.
    index = np.minimum(np.searchsorted(edges, scores, side="right") - 1, bins - 1)
    mean_score: list[float | None] = []
    positive_share: list[float | None] = []
    weights: list[float] = []
    gap = 0.0
    for b in range(bins):
        in_bin = index == b
        weight = float(sample_weight[in_bin].sum())
        weights.append(weight)
        if not in_bin.any():
            mean_score.append(None)
            positive_share.append(None)
            continue
        bin_weights = sample_weight[in_bin]
        mean = float(np.average(scores[in_bin], weights=bin_weights))
        share = float(np.average(positives[in_bin], weights=bin_weights))
        mean_score.append(mean)
        positive_share.append(share)
        gap += weight * abs(mean - share)
    return Calibration(
        bin_edges=tuple(float(edge) for edge in edges),
        mean_score=tuple(mean_score),
        positive_share=tuple(positive_share),
        weight=tuple(weights),
        expected_calibration_error=float(gap),
        balanced=balanced,
    )
