"""`vcfad eval-detector`: EER, F1, accuracy, false alarms, per-system EER, calibration, DET curve.

Each model is scored through :class:`~services.detector.inference.Detector` (the ONNX graph the
service runs) at its own shipped threshold: nothing is tuned on the evaluated manifest.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
import os
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
from scipy.stats import norm
from tqdm import tqdm

from services.detector.inference import Detector
from services.detector.model_files import ModelSpec, copy_model, removed_on_failure
from services.detector.training.manifest import ManifestError, ManifestRow, folder_rows, read_manifest
from shared.audio import AudioError
from shared.metrics import (
    binary_report,
    bootstrap_eers,
    calibration,
    det_curve,
    equal_error_rate,
    percentile_interval,
)


@dataclass
class ModelScores:
    model: str
    threshold: float
    rows: list[ManifestRow]
    scores: np.ndarray
    failed: list[tuple[str, str]]

    @property
    def labels(self) -> np.ndarray:
        return np.array([row.is_fake for row in self.rows], dtype=int)


def score_manifest(detector: Detector, rows: Sequence[ManifestRow], label: str | None = None) -> ModelScores:
    """Score every row; ``label`` names the model in reports (default: its name).

    Raises
    ------
    ManifestError
        Not one row could be scored (e.g. paths that do not resolve from the manifest's folder):
        the message says how many and why the first failed, instead of an empty report.
    """
    label = label or detector.name
    kept, scores, failed = [], [], []
    for row in tqdm(rows, desc=f"scoring with {label}", unit="clip", leave=False):
        try:
            scores.append(detector.detect(row.path).score)
            kept.append(row)
        except AudioError as error:
            failed.append((str(row.path), str(error)))
    if rows and not kept:
        path, first = failed[0]
        missing = not Path(path).exists()
        hint = " (a manifest's relative paths are read from the manifest's own folder)" if missing else ""
        raise ManifestError(f"none of the {len(rows)} clips could be scored by {label}; the first: {first}{hint}")
    return ModelScores(label, detector.threshold, kept, np.array(scores), failed)


def model_labels(detectors: Sequence[Detector]) -> list[str]:
    """Report labels: each model's name, with its folder added where two compared models share a name
    (a retrained candidate beside the shipped model would otherwise be two identical columns)."""
    names = [detector.name for detector in detectors]
    return [
        f"{name} ({_shown_path(detector.model_dir)})" if names.count(name) > 1 else name
        for name, detector in zip(names, detectors, strict=True)
    ]


def _shown_path(path: Path) -> str:
    """``path`` relative to the working folder where it lies under it (shorter report columns)."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def real_source(row: ManifestRow) -> str:
    """The recording channel a real clip comes from: its corpus folder in a built manifest's
    ``source`` (``librispeech/test-other``), else its ``system`` (e.g. FoR's real subsets)."""
    source = (row.extra.get("source") or "").split("@")[0]
    parts = PurePosixPath(source).parts
    # corpus/subset: LibriSpeech's test-other keeps speaker folders below, train-clean-100 does not.
    return "/".join(parts[:2]) if len(parts) >= 3 and not source.startswith("/") else row.system


def summarise(result: ModelScores) -> dict:
    labels, scores = result.labels, result.scores
    report = binary_report(labels, scores, result.threshold).as_dict()
    real = labels == 0
    per_system = {}
    by_system: dict[str, list[int]] = defaultdict(list)
    for index, row in enumerate(result.rows):
        by_system[row.system].append(index)
    for system, indices in sorted(by_system.items()):
        indices_array = np.array(indices)
        system_scores = scores[indices_array]
        is_fake = result.rows[indices[0]].is_fake
        entry: dict[str, float | int | str] = {"label": "spoof" if is_fake else "bonafide", "count": len(indices)}
        if is_fake:
            mask = real.copy()
            mask[indices_array] = True
            entry["eer_vs_all_real"] = equal_error_rate(labels[mask], scores[mask])[0]
            entry["miss_rate"] = float(np.mean(system_scores < result.threshold))
        else:
            entry["false_alarm_rate"] = float(np.mean(system_scores >= result.threshold))
        entry["mean_score"] = float(np.mean(system_scores))
        per_system[system] = entry
    by_source: dict[str, list[int]] = defaultdict(list)
    for index, row in enumerate(result.rows):
        if not row.is_fake:
            by_source[real_source(row)].append(index)
    per_real_source = {}
    for source, indices in sorted(by_source.items()):
        mask = ~real  # every fake clip against this source's real clips only
        mask[np.array(indices)] = True
        per_real_source[source] = {
            "count": len(indices),
            "false_alarm_rate": float(np.mean(scores[np.array(indices)] >= result.threshold)),
            "eer_vs_all_fakes": equal_error_rate(labels[mask], scores[mask])[0] if (~real).any() else None,
        }
    return {
        "model": result.model,
        "overall": report,
        "calibration": _calibration_entry(labels, scores),
        "per_system": per_system,
        "per_real_source": per_real_source,
        "failed": [{"path": path, "error": error} for path, error in result.failed],
    }


def _calibration_entry(labels: np.ndarray, scores: np.ndarray) -> dict | None:
    """Reliability tables (as scored and with the classes weighted equally); None for a one-class set,
    where the balanced table is undefined and the plain one only restates the false-alarm rate, and
    for scores that are not probabilities (every shipped model's are)."""
    if len(set(labels.tolist())) < 2 or not np.all((scores >= 0.0) & (scores <= 1.0)):
        return None
    return {
        "as_scored": calibration(labels, scores).as_dict(),
        "balanced": calibration(labels, scores, balanced=True).as_dict(),
    }


@contextmanager
def _figure(path: Path, title: str, width_in: float, legend_loc: str) -> Iterator[Any]:
    """Axes of a new figure, titled, gridded and saved to ``path`` once the caller has drawn on them."""
    # matplotlib loads only when a plot is drawn, and its backend must be set before pyplot loads.
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot  # after matplotlib.use("Agg"), above

    figure, axes = pyplot.subplots(figsize=(width_in, 5.0))
    try:
        yield axes
        axes.set_title(title)
        axes.grid(True, alpha=0.3)
        axes.legend(loc=legend_loc, fontsize=8)
        figure.tight_layout()
        figure.savefig(path, dpi=110)
    finally:
        pyplot.close(figure)


def plot_reliability(summaries: Sequence[dict], path: Path, title: str) -> None:
    """Reliability diagram: observed share of fakes against mean score per bin, classes weighted equally."""
    with _figure(path, title, width_in=5.0, legend_loc="upper left") as axes:
        axes.plot([0, 1], [0, 1], color="grey", linestyle=":", label="calibrated")
        for summary in summaries:
            table = summary["calibration"]["balanced"]
            points = [
                (mean, share)
                for mean, share in zip(table["mean_score"], table["positive_share"], strict=True)
                if mean is not None
            ]
            axes.plot(
                [mean for mean, _ in points],
                [share for _, share in points],
                marker="o",
                label=f"{summary['model']} (ECE {100 * table['expected_calibration_error']:.1f} %)",
            )
        axes.set_xlim(0, 1)
        axes.set_ylim(0, 1)
        axes.set_xlabel("mean score in bin (stated probability of fake)")
        axes.set_ylabel("share of fakes in bin (classes weighted equally)")


def plot_det(results: Sequence[ModelScores], path: Path, title: str) -> None:
    ticks = np.array([0.01, 0.02, 0.05, 0.1, 0.2, 0.4, 0.6])
    with _figure(path, title, width_in=5.5, legend_loc="upper right") as axes:
        for result in results:
            false_alarm, miss = det_curve(result.labels, result.scores)
            eer = equal_error_rate(result.labels, result.scores)[0]
            axes.plot(
                norm.ppf(np.clip(false_alarm, 1e-3, 1 - 1e-3)),
                norm.ppf(np.clip(miss, 1e-3, 1 - 1e-3)),
                label=f"{result.model} (EER {100 * eer:.1f} %)",
            )
        axes.set_xticks(norm.ppf(ticks), [f"{100 * t:g}" for t in ticks])
        axes.set_yticks(norm.ppf(ticks), [f"{100 * t:g}" for t in ticks])
        axes.set_xlim(norm.ppf(0.005), norm.ppf(0.7))
        axes.set_ylim(norm.ppf(0.005), norm.ppf(0.7))
        axes.set_xlabel("false-alarm rate (real called fake), %")
        axes.set_ylabel("miss rate (fake called real), %")


def markdown(summaries: Sequence[dict], manifests: Sequence[str], real_dirs: Sequence[str] = ()) -> str:
    sources = [f"`{manifest}`" for manifest in manifests]
    sources += [f"real recordings under `{folder}`" for folder in real_dirs]
    lines = [
        "Manifests: " + ", ".join(sources),
        "",
        "| model | clips | EER | F1 (fake +) | accuracy | false-alarm rate | miss rate | threshold |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for summary in summaries:
        o = summary["overall"]
        lines.append(
            f"| {summary['model']} | {o['count']} | {_percent(o['eer'])} | {_f1_text(o['f1'])} | "
            f"{_percent(o['accuracy'])} | {_percent(o['false_alarm_rate'])} | {_percent(o['miss_rate'])} | "
            f"{o['threshold']:.3f} |"
        )
    calibrated = [summary for summary in summaries if summary.get("calibration")]
    if calibrated:
        lines += [
            "",
            "Calibration: expected calibration error of the score as a probability of fake (10 equal-width "
            "bins; as scored, and with real and fake clips weighted equally, the odds a balanced-class "
            "detector states): "
            + "; ".join(
                f"{summary['model']} {_percent(summary['calibration']['as_scored']['expected_calibration_error'])}"
                f" / {_percent(summary['calibration']['balanced']['expected_calibration_error'])}"
                for summary in calibrated
            )
            + " (reliability diagram: reliability.png).",
        ]
    intervals = [summary for summary in summaries if "eer_interval" in summary["overall"]]
    if intervals:
        first = intervals[0]["overall"]["eer_interval"]
        lines += [
            "",
            f"EER with its 95 % bootstrap interval ({first['resamples']} resamples of the {first['clips']} clips "
            f"all models scored, drawn as {first['units']} units — a recording's windows and copies together, "
            "other clips alone —, real and fake resampled apart); differences to the first model paired on the "
            "same resamples:",
            "",
        ]
        for summary in intervals:
            overall = summary["overall"]
            lines.append(_interval_line(summary["model"], overall["eer"], overall, summary.get("versus_first")))
        lines += _per_source_intervals(summaries)
    lines += _breakdown_table(
        summaries,
        "per_system",
        "Per system (fakes: EER against all real clips / miss rate; real: false-alarm rate):",
        "system",
        _system_cell,
    )
    lines += _breakdown_table(
        summaries,
        "per_real_source",
        "Per real source (EER of all fakes against its real clips / false-alarm rate):",
        "real source",
        _real_source_cell,
    )
    return "\n".join(lines) + "\n"


def _per_source_intervals(summaries: Sequence[dict]) -> list[str]:
    """Markdown lines of each real source's EER interval and paired difference (where computed)."""
    lines: list[str] = []
    for source in sorted({name for summary in summaries for name in summary["per_real_source"]}):
        for summary in summaries:
            entry = summary["per_real_source"].get(source, {})
            if "eer_interval" not in entry:
                continue
            if not lines:
                lines += ["", "The same for all fakes against each real source's clips:", ""]
            label = f"{source}, {summary['model']}"
            lines.append(_interval_line(label, entry["eer_vs_all_fakes"], entry, entry.get("versus_first")))
    return lines


def _interval_line(label: str, eer: float, entry: dict, versus: dict | None) -> str:
    """``- label: EER % [interval]`` and, after the first model, its paired difference."""
    low, high = entry["eer_interval"]["bounds"]
    text = f"- {label}: {100 * eer:.1f} % [{100 * low:.1f}, {100 * high:.1f}]"
    if versus:
        low, high = versus["bounds"]
        text += (
            f"; minus {versus['model']}: {100 * versus['eer_difference']:+.1f} points "
            f"[{100 * low:+.1f}, {100 * high:+.1f}]"
        )
    return text


def _breakdown_table(
    summaries: Sequence[dict], key: str, title: str, first_column: str, cell: Callable[[dict], str]
) -> list[str]:
    """Markdown lines of one breakdown (``summary[key]``: name -> entry) with a column per model;
    ``cell`` formats one model's entry, "–" where a model has none."""
    names = sorted({name for summary in summaries for name in summary[key]})
    lines = ["", title, "", f"| {first_column} | " + " | ".join(summary["model"] for summary in summaries) + " |"]
    lines.append("|---|" + "---|" * len(summaries))
    for name in names:
        cells = [cell(summary[key][name]) if name in summary[key] else "–" for summary in summaries]
        count = next(summary[key][name]["count"] for summary in summaries if name in summary[key])
        lines.append(f"| {name} ({count}) | " + " | ".join(cells) + " |")
    return lines


def _f1_text(f1: float | None) -> str:
    return "–" if _undefined(f1) else f"{f1:.3f}"


def _system_cell(entry: dict) -> str:
    if entry["label"] == "spoof":
        return f"EER {_percent(entry['eer_vs_all_real'])} / miss {_percent(entry['miss_rate'])}"
    return f"false alarms {_percent(entry['false_alarm_rate'])}"


def _real_source_cell(entry: dict) -> str:
    return f"EER {_percent(entry['eer_vs_all_fakes'])} / false alarms {_percent(entry['false_alarm_rate'])}"


def augment_steps(row: ManifestRow) -> set[str]:
    """The names of the channel steps a built clip went through (its ``augment`` column, e.g.
    ``noise(12dB)+gate(-35dB)`` → {"noise", "gate"}); empty for other manifests."""
    description = row.extra.get("augment") or ""
    return {step.split("(")[0] for step in description.split("+") if step and step != "none"}


def manifest_rows(
    manifests: Sequence[Path],
    split: str | None = None,
    without_steps: Sequence[str] = (),
    real_dirs: Sequence[Path] = (),
) -> list[ManifestRow]:
    """The rows of ``manifests`` pooled, optionally of one split only and without the clips that
    went through any of ``without_steps`` (:func:`augment_steps`), then every audio file under
    each of ``real_dirs`` as real speech (:func:`folder_rows`; folders have no split, so ``split``
    needs manifests); an error if no rows are left."""
    if not manifests and not real_dirs:
        raise ManifestError("nothing to score: give a manifest or a folder of real recordings")
    if split and not manifests:
        raise ManifestError(f"split {split!r} selects manifest rows, and only folders were given (they have no splits)")
    rows = [row for manifest in manifests for row in read_manifest(manifest)]
    if split:
        rows = [row for row in rows if row.split == split]
        if not rows:
            raise ManifestError(f"{', '.join(map(str, manifests))}: no rows in split {split!r}")
    if without_steps and manifests:
        rows = [row for row in rows if not augment_steps(row) & set(without_steps)]
        if not rows:
            raise ManifestError(f"{', '.join(map(str, manifests))}: no rows left without {', '.join(without_steps)}")
    return rows + [row for folder in real_dirs for row in folder_rows(folder)]


def read_scores(path: Path, label: str, rows: Sequence[ManifestRow], threshold: float) -> ModelScores:
    """A model's scores of ``rows`` from an earlier report's ``scores.tsv`` (its column ``label``)
    instead of running the model: to slice an evaluation again without scoring it again. Paths are
    matched as :func:`write_scores` wrote them, relative to the working folder, so run it from the
    same folder; a row the earlier report lacks counts as failed."""
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        if label not in (reader.fieldnames or ()):
            raise ManifestError(f"{path}: no scores of model {label!r} (columns: {reader.fieldnames})")
        earlier = {entry["path"]: float(entry[label]) for entry in reader}
    kept, scores, failed = [], [], []
    for row in rows:
        shown = os.path.relpath(row.path)
        if shown in earlier:
            kept.append(row)
            scores.append(earlier[shown])
        else:
            failed.append((str(row.path), f"not in {path}"))
    if not kept:
        raise ManifestError(f"{path}: none of the {len(rows)} clips is in it (run from the folder it was written in)")
    return ModelScores(label, threshold, kept, np.array(scores), failed)


def evaluate(
    detectors: Sequence[Detector],
    manifests: Sequence[Path],
    out_dir: Path | None = None,
    split: str | None = None,
    without_steps: Sequence[str] = (),
    scores_from: Path | None = None,
    real_dirs: Sequence[Path] = (),
) -> list[dict]:
    """Score the rows of ``manifests`` (optionally one split, optionally without the clips that went
    through ``without_steps``) and the real recordings under ``real_dirs`` with each detector, or
    read their scores from an earlier report's ``scores.tsv`` (``scores_from``); write reports to
    ``out_dir``."""
    rows = manifest_rows(manifests, split, without_steps, real_dirs)
    results = [
        score_manifest(detector, rows, label)
        if scores_from is None
        else read_scores(scores_from, label, rows, detector.threshold)
        for detector, label in zip(detectors, model_labels(detectors), strict=True)
    ]
    summaries = [summarise(result) for result in results]
    add_intervals(results, summaries)
    if out_dir is not None:
        selection = {
            "without_steps": list(without_steps),
            "scores_from": str(scores_from) if scores_from else None,
            "real_dirs": [str(folder) for folder in real_dirs],
        }
        write_reports(results, summaries, [str(manifest) for manifest in manifests], split, Path(out_dir), selection)
    return summaries


def _json_ready(value: object) -> object:
    """``value`` with every NaN (a metric a one-class set does not define) as None: JSON has no NaN."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {key: _json_ready(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(item) for item in value]
    return value


def write_reports(
    results: Sequence[ModelScores],
    summaries: Sequence[dict],
    manifests: Sequence[str],
    split: str | None,
    out_dir: Path,
    selection: dict | None = None,
) -> None:
    """report.json (with ``selection``: how the rows were chosen beyond the split), report.md,
    scores.tsv and (where both classes are present) the DET curve det.png and the reliability
    diagram reliability.png.

    A set of one class (real traffic only, say) still gets its false-alarm or miss rate; the
    metrics it does not define are null in report.json and "–" in report.md.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    report = {"manifests": list(manifests), "split": split, **(selection or {}), "models": list(summaries)}
    folders = report.get("real_dirs", ())
    (out_dir / "report.json").write_text(json.dumps(_json_ready(report), indent=2, allow_nan=False) + "\n")
    (out_dir / "report.md").write_text(markdown(summaries, manifests, folders))
    write_scores(results, out_dir / "scores.tsv")
    for plot in ("det.png", "reliability.png"):
        (out_dir / plot).unlink(missing_ok=True)  # an earlier run's curve must not pass for this one's
    if all(len(set(result.labels.tolist())) == 2 for result in results):
        sets = " + ".join([Path(m).parent.name for m in manifests] + [Path(f).name for f in folders])
        plot_det(results, out_dir / "det.png", title=f"DET: {sets}")
        plot_reliability(summaries, out_dir / "reliability.png", title=f"Reliability: {sets}")


def _undefined(value: float | None) -> bool:
    """A metric the set does not define (no clips of a class): None in JSON, NaN in a summary."""
    return value is None or math.isnan(value)


def _percent(value: float | None) -> str:
    return "–" if _undefined(value) else f"{100 * value:.1f} %"


def _common_rows(results: Sequence[ModelScores]) -> tuple[list[ManifestRow], np.ndarray, list[np.ndarray]]:
    """The clips every model scored (in the first model's order), their labels and each model's scores."""
    by_model = [{str(row.path): score for row, score in zip(r.rows, r.scores, strict=True)} for r in results]
    paths = [str(row.path) for row in results[0].rows if all(str(row.path) in scores for scores in by_model)]
    rows = {str(row.path): row for row in results[0].rows}
    labels = np.array([int(rows[path].is_fake) for path in paths], dtype=int)
    return [rows[path] for path in paths], labels, [np.array([scores[path] for path in paths]) for scores in by_model]


def recording_group(row: ManifestRow) -> str:
    """The bootstrap unit of a clip: the recording it was cut or copied from (a built manifest's
    ``source`` up to ``@``), or the clip itself where it has no such source (synthesized text,
    other manifests)."""
    source = row.extra.get("source") or ""
    return f"{row.label}:{source.split('@')[0]}" if "@" in source else f"clip:{row.path}"


def add_intervals(results: Sequence[ModelScores], summaries: list[dict], resamples: int = 1000) -> None:
    """Add each model's EER 95 % bootstrap interval and, after the first model, its paired EER
    difference to the first with its interval (``eer_interval`` and ``versus_first`` in
    ``overall``'s summary and in each ``per_real_source`` entry: all fakes against that source's
    real clips). The resampled units are recordings (:func:`recording_group`), not windows."""
    rows, labels, score_sets = _common_rows(results)
    if len(set(labels.tolist())) < 2:
        return
    groups = np.array([recording_group(row) for row in rows])
    sources = np.array([real_source(row) if not row.is_fake else "" for row in rows])
    subsets = [(None, np.ones(len(rows), dtype=bool))]
    if len(set(sources[labels == 0])) > 1:  # with one source its entry would repeat the overall one
        subsets += [(source, (labels == 1) | (sources == source)) for source in sorted(set(sources[labels == 0]))]
    for source, mask in subsets:
        entries = _paired_intervals(labels[mask], [scores[mask] for scores in score_sets], groups[mask], resamples)
        for summary, (interval, versus) in zip(summaries, entries, strict=True):
            target = summary if source is None else summary["per_real_source"].get(source)
            if target is None:  # a model that failed on every clip of this source
                continue
            (target["overall"] if source is None else target)["eer_interval"] = interval
            if versus is not None:
                target["versus_first"] = versus | {"model": summaries[0]["model"]}


def _paired_intervals(
    labels: np.ndarray, score_sets: list[np.ndarray], groups: np.ndarray, resamples: int
) -> list[tuple[dict, dict | None]]:
    """Per model: its EER interval, and (after the first) its paired difference to the first."""
    eers = bootstrap_eers(labels, score_sets, groups=list(groups), resamples=resamples)
    point = [equal_error_rate(labels, scores)[0] for scores in score_sets]
    entries = []
    for column in range(len(score_sets)):
        interval = {
            "level": 0.95,
            "clips": len(labels),
            "units": len(set(groups.tolist())),
            "resamples": resamples,
            "bounds": percentile_interval(eers[:, column]),
        }
        versus = None
        if column:
            versus = {
                "eer_difference": point[column] - point[0],
                "bounds": percentile_interval(eers[:, column] - eers[:, 0]),
            }
        entries.append((interval, versus))
    return entries


def write_scores(results: Sequence[ModelScores], path: Path) -> None:
    """One row per clip every model scored: path, label, system and each model's score."""
    rows, _, score_sets = _common_rows(results)
    with path.open("w", encoding="utf-8") as handle:
        handle.write("\t".join(["path", "label", "system", *(result.model for result in results)]) + "\n")
        for index, row in enumerate(rows):
            scores = "\t".join(f"{scores[index]:.6f}" for scores in score_sets)
            shown = os.path.relpath(row.path)  # relative to the working folder: no machine's absolute paths
            handle.write(f"{shown}\t{row.label}\t{row.system}\t{scores}\n")


def operating_threshold(result: ModelScores, false_alarm_rate: float | None = None) -> float:
    """The threshold a model should use, from its scores on data it was not fitted to.

    Without ``false_alarm_rate``: the EER point (what training does on dev). With it: the lowest
    threshold at which at most that share of the real clips is called fake, for a deployment that
    must bound false alarms on its own real traffic.
    """
    labels = result.labels
    require_classes(labels, false_alarm_rate)
    if false_alarm_rate is None:
        return equal_error_rate(labels, result.scores)[1]
    real = np.sort(result.scores[labels == 0])[::-1]
    allowed = int(np.floor(false_alarm_rate * real.size + 1e-9))  # real clips that may score ≥ threshold
    if allowed >= real.size:
        return float(real[-1])
    # Just above the highest real score that must stay below it (scores are probabilities).
    return float(np.nextafter(real[allowed], np.inf))


def require_classes(labels: np.ndarray, false_alarm_rate: float | None) -> None:
    """The EER point needs both classes; a false-alarm bound needs real clips."""
    if false_alarm_rate is None and len(set(labels.tolist())) < 2:
        raise ManifestError("the EER point needs real and fake clips; use --false-alarm-rate for real clips only")
    if not (labels == 0).any():
        raise ManifestError("no real (bonafide) clips to bound the false-alarm rate on")


def set_threshold(
    detector: Detector,
    manifests: Sequence[Path],
    *,
    split: str | None = None,
    false_alarm_rate: float | None = None,
    real_dirs: Sequence[Path] = (),
    out: Path | None = None,
) -> tuple[float, float]:
    """Score ``manifests`` (optionally one split) and the real recordings under ``real_dirs``,
    write the operating threshold into the model's ``model.json`` with where it came from, or
    into a copy of the model at ``out`` (:func:`copy_model`); returns ``(old, new)`` thresholds."""

    rows = manifest_rows(manifests, split, real_dirs=real_dirs)
    # Before scoring, which takes minutes on a large manifest; checked again after failed clips drop out.
    require_classes(np.array([row.is_fake for row in rows], dtype=int), false_alarm_rate)
    model_dir = detector.model_dir
    if out is not None:  # copied before scoring, so a taken folder is refused at once
        copy_model(model_dir, out)
        model_dir = Path(out)
    # The copy's graph is the source's (the threshold is not in it), so the source scores for it.
    with nullcontext() if out is None else removed_on_failure(model_dir):
        result = score_manifest(detector, rows)
        new = operating_threshold(result, false_alarm_rate)
        spec = ModelSpec.read(model_dir)
        old = spec.threshold
        spec.threshold = new
        spec.training.setdefault("threshold_history", []).append(
            {
                "threshold": new,
                "replaced": old,
                "rule": "eer" if false_alarm_rate is None else f"false_alarm_rate<={false_alarm_rate}",
                "manifests": [str(manifest) for manifest in manifests],
                "real_dirs": [str(folder) for folder in real_dirs],
                "split": split,
                "clips": len(result.rows),
                "date": dt.date.today().isoformat(),
            }
        )
        spec.write(model_dir)
    return old, new
