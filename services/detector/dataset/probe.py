"""The shortcut probe: can four trivial numbers tell real from fake in a dataset?

Features of each clip: duration, noise floor (10th percentile of 20 ms frame levels), silence share
(frames more than 35 dB below the loudest one) and high-band energy (share of 4–8 kHz in dB).
A logistic regression on them is trained on the ``train`` split and scored (EER) on ``dev`` and
``test``, overall and per fake system. An EER far below 50 % means the data leaks the label
through something other than the voice: fix the data, not the model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from tqdm import tqdm

from services.detector.training.manifest import ManifestRow, read_manifest
from shared.audio import decode_audio
from shared.files import write_atomic
from shared.metrics import equal_error_rate

FEATURES = ("duration_s", "noise_floor_db", "silence_share", "high_band_db")
_FRAME_S = 0.02
SPLITS = ("train", "dev", "test")


def clip_features(samples: np.ndarray, sample_rate_hz: int) -> np.ndarray:
    """The four probe numbers of one clip, in the order of :data:`FEATURES`."""
    samples = np.asarray(samples, dtype=np.float64)
    duration_s = len(samples) / sample_rate_hz
    frame = max(1, round(_FRAME_S * sample_rate_hz))
    count = max(1, len(samples) // frame)
    frames = np.resize(samples, count * frame).reshape(count, frame) if len(samples) else np.zeros((1, frame))
    level_db = 10 * np.log10(np.maximum(np.mean(frames**2, axis=1), 1e-12))
    noise_floor_db = float(np.percentile(level_db, 10))
    silence_share = float(np.mean(level_db < level_db.max() - 35.0))
    spectrum = np.abs(np.fft.rfft(frames * np.hanning(frame), axis=1)) ** 2
    freqs = np.fft.rfftfreq(frame, d=1 / sample_rate_hz)
    total = float(spectrum.sum()) + 1e-20
    high = float(spectrum[:, freqs >= 4000].sum()) + 1e-20
    return np.array([duration_s, noise_floor_db, silence_share, 10 * np.log10(high / total)])


@dataclass
class ProbeResult:
    counts: dict[str, dict[str, int]]
    eer: dict[str, float]
    per_system: dict[str, dict[str, float | str | int]]
    single_feature_eer: dict[str, dict[str, float]]
    #: ``{feature: {"bonafide": mean, "spoof": mean}}``, then ``{"system:<name>": {feature: mean}}``.
    class_means: dict[str, dict[str, float]]
    coefficients: dict[str, float]

    def as_dict(self) -> dict:
        return {
            "features": list(FEATURES),
            "model": "standardised logistic regression trained on split=train",
            "counts": self.counts,
            "eer": self.eer,
            "per_system": self.per_system,
            "single_feature_eer_test": self.single_feature_eer,
            "class_means": self.class_means,
            "coefficients": self.coefficients,
        }

    def table(self) -> str:
        lines = [f"shortcut probe ({', '.join(FEATURES)}): logistic regression trained on train"]
        for split, value in self.eer.items():
            lines.append(f"  EER {split:<5} {100 * value:5.1f} %")
        lines.append("  per system (its fakes vs the real clips of its split):")
        for system, info in sorted(self.per_system.items()):
            eer = 100 * float(info["eer"])
            lines.append(f"    {system:<28} {info['split']:<5} n={info['count']:<4} EER {eer:5.1f} %")
        lines.append("  single feature (|EER| on test, sign-free):")
        for name, value in self.single_feature_eer.items():
            lines.append(f"    {name:<16} {100 * value['test']:5.1f} %")
        return "\n".join(lines)


def _sign_free_eer(labels: np.ndarray, scores: np.ndarray) -> float:
    eer, _ = equal_error_rate(labels, scores)
    return float(min(eer, 1 - eer)) if np.isfinite(eer) else float("nan")


def probe_rows(rows: list[ManifestRow], features: np.ndarray | None = None) -> ProbeResult:
    """Run the probe on manifest rows (features are computed from the audio unless given)."""
    if features is None:
        features = np.stack([clip_features(*_read(row.path)) for row in rows])
    labels = np.array([row.is_fake for row in rows], dtype=int)
    splits = np.array([row.split for row in rows])
    systems = np.array([row.system for row in rows])
    train = splits == "train"
    if labels[train].min(initial=1) == labels[train].max(initial=0):
        raise ValueError("the probe needs both classes in the train split")
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    model.fit(features[train], labels[train])
    scores = model.predict_proba(features)[:, 1]

    counts = {
        split: {
            "bonafide": int(np.sum((splits == split) & (labels == 0))),
            "spoof": int(np.sum((splits == split) & (labels == 1))),
        }
        for split in SPLITS
    }
    eer = {split: equal_error_rate(labels[splits == split], scores[splits == split])[0] for split in SPLITS}
    per_system: dict[str, dict[str, float | str | int]] = {}
    for system in sorted(set(systems[labels == 1])):
        mask = systems == system
        for split in sorted(set(splits[mask])):
            chosen = (mask & (splits == split)) | ((splits == split) & (labels == 0))
            key = system if len(set(splits[mask])) == 1 else f"{system}@{split}"
            per_system[key] = {
                "split": split,
                "count": int(np.sum(mask & (splits == split))),
                "eer": equal_error_rate(labels[chosen], scores[chosen])[0],
            }
    single = {}
    test = splits == "test"
    for index, name in enumerate(FEATURES):
        single[name] = {
            "test": _sign_free_eer(labels[test], features[test, index]),
            "all": _sign_free_eer(labels, features[:, index]),
        }
    class_means = {
        name: {
            "bonafide": float(np.mean(features[labels == 0, index])),
            "spoof": float(np.mean(features[labels == 1, index])),
        }
        for index, name in enumerate(FEATURES)
    }
    for system in sorted(set(systems)):
        class_means[f"system:{system}"] = {
            name: float(np.mean(features[systems == system, index])) for index, name in enumerate(FEATURES)
        }
    coefficients = dict(zip(FEATURES, map(float, model[-1].coef_[0]), strict=True))
    return ProbeResult(counts, eer, per_system, single, class_means, coefficients)


def _read(path: Path) -> tuple[np.ndarray, int]:
    audio = decode_audio(path)
    return audio.samples, audio.sample_rate_hz


def probe_manifest(manifest: str | Path, output: str | Path | None = None) -> ProbeResult:
    """Probe a built manifest; writes the JSON result to ``output`` when given."""
    rows = read_manifest(manifest)
    features = np.stack([clip_features(*_read(row.path)) for row in tqdm(rows, desc="probe features", unit="clip")])
    result = probe_rows(rows, features)
    if output is not None:
        text = json.dumps(result.as_dict(), indent=2, allow_nan=True) + "\n"
        write_atomic(Path(output), lambda temp: temp.write_text(text, encoding="utf-8"))
    return result
