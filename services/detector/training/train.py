"""Training the detector models from a built dataset manifest.

Model choices (layers, regularisation) are made on the ``dev`` split, whose fake systems are
kept out of training, and the decision threshold is the EER point on ``dev``. The ``test``
split is never looked at here, except by a refit (``train_splits=REFIT_SPLITS``): once a recipe
has been chosen on dev and scored on test, the shipped model learns from the test sources too,
and dev stays out as the calibration share that its choices and threshold come from.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import onnxruntime
from onnx import helper
from skl2onnx import to_onnx
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from tqdm import tqdm

from services.detector.inference import DETECTION_LOAD_POLICY
from services.detector.model_files import ModelSpec, Pooling, ProbeHead
from services.detector.seed_features import SeedFeatures
from services.detector.training.export import export_probe_onnx
from services.detector.training.feature_cache import FeatureCache
from services.detector.training.features import WhisperLayerFeatures
from services.detector.training.frames import FrameHeadConfig, FrameTraining, train_whisper_frames
from services.detector.training.manifest import ManifestError, ManifestRow, read_manifest, select
from services.detector.training.onnx_features import OnnxLayerFeatures
from shared.audio import load_audio
from shared.log_mel import whisper_log_mel
from shared.metrics import equal_error_rate
from shared.offline_models import cache_dir
from shared.onnx_export import ONNX_TOLERANCE


def labels_of(rows: Sequence[ManifestRow]) -> np.ndarray:
    """1 for each fake row, 0 for each real one."""
    return np.array([row.is_fake for row in rows], dtype=int)


#: The splits a model learns from: the usual run, and a refit after the recipe was chosen.
TRAIN_SPLITS: tuple[str, ...] = ("train",)
REFIT_SPLITS: tuple[str, ...] = ("train", "test")


def split_rows(
    manifests: Path | Sequence[Path], train_splits: Sequence[str] = TRAIN_SPLITS
) -> tuple[list[ManifestRow], list[ManifestRow]]:
    """The training rows (of ``train_splits``) and the dev rows of one manifest or of several pooled."""
    if "dev" in train_splits:
        raise ValueError("the dev split holds the choices and the threshold: it cannot be trained on")
    paths = [manifests] if isinstance(manifests, str | Path) else list(manifests)
    rows = [row for path in paths for row in read_manifest(path)]
    names = ", ".join(map(str, paths))
    if empty := [split for split in train_splits if not select(rows, split)]:
        raise ManifestError(f"{names}: no rows of the {empty[0]} split, which this training learns from")
    train = [row for split in train_splits for row in select(rows, split)]
    dev = select(rows, "dev")
    for name, part in (("train", train), ("dev", dev)):
        if len(set(labels_of(part))) < 2:
            raise ManifestError(f"{names}: the {name} split needs both bonafide and spoof rows")
    return train, dev


def _summary(
    manifest: Path | Sequence[Path],
    train: Sequence[ManifestRow],
    dev: Sequence[ManifestRow],
    train_splits: Sequence[str] = TRAIN_SPLITS,
) -> dict:
    def systems(rows: Sequence[ManifestRow]) -> list[str]:
        return sorted({row.system for row in rows if row.is_fake})

    return {
        "manifest": str(manifest) if isinstance(manifest, str | Path) else [str(path) for path in manifest],
        "train_splits": list(train_splits),
        "train_clips": len(train),
        "dev_clips": len(dev),
        "train_fake_systems": systems(train),
        "dev_fake_systems": systems(dev),
    }


@dataclass(frozen=True)
class TrainResult:
    model_dir: Path
    dev_eer: float
    threshold: float
    details: dict


def train_seed_baseline(
    manifest: Path | Sequence[Path],
    out_dir: Path,
    name: str = "seed-baseline",
    train_splits: Sequence[str] = TRAIN_SPLITS,
) -> TrainResult:
    """The reference recipe: 193 time-averaged features → StandardScaler → SVM (RBF, Platt probabilities)."""

    train, dev = split_rows(manifest, train_splits)
    extractor = SeedFeatures()
    cache = FeatureCache("seed-193")
    x_train = cache.features(train, extractor, "seed features (train)")
    x_dev = cache.features(dev, extractor, "seed features (dev)")
    pipeline = make_pipeline(StandardScaler(), SVC(C=1.0, gamma="scale", probability=True, random_state=0))
    pipeline.fit(x_train, labels_of(train))
    dev_scores = pipeline.predict_proba(x_dev)[:, 1]
    dev_eer, threshold = equal_error_rate(labels_of(dev), dev_scores)

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    onnx_model = to_onnx(pipeline, x_train[:1].astype(np.float32), options={id(pipeline): {"zipmap": False}})
    onnx_path = out_dir / "model.onnx"
    onnx_path.write_bytes(_seed_graph_with_probability_output(onnx_model).SerializeToString())
    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    onnx_scores = session.run(None, {session.get_inputs()[0].name: x_dev.astype(np.float32)})[0].reshape(-1)
    difference = float(np.max(np.abs(onnx_scores - dev_scores)))
    if difference > ONNX_TOLERANCE:
        raise RuntimeError(f"seed-baseline ONNX differs from scikit-learn by {difference:.2e}")
    details = _summary(manifest, train, dev, train_splits) | {"onnx_max_abs_difference": difference, "dev_eer": dev_eer}
    ModelSpec(
        name=name,
        kind="seed-baseline",
        threshold=threshold,
        created=dt.date.today().isoformat(),
        training=details,
    ).write(out_dir)
    return TrainResult(out_dir, dev_eer, threshold, details)


def _seed_graph_with_probability_output(onnx_model):  # -> onnx.ModelProto
    """Keep only P(fake) as the graph's single output ``probability`` (batch,)."""

    graph = onnx_model.graph
    probabilities = graph.output[1].name
    graph.node.extend(
        [
            helper.make_node("Constant", [], ["fake_column"], value=helper.make_tensor("c", 7, [1], [1])),
            helper.make_node("Constant", [], ["minus_one"], value=helper.make_tensor("m", 7, [1], [-1])),
            helper.make_node("Gather", [probabilities, "fake_column"], ["fake_probability"], axis=1),
            helper.make_node("Reshape", ["fake_probability", "minus_one"], ["probability"]),
        ]
    )
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info("probability", 1, [None]))
    return onnx_model


#: Hidden states the default model may read (block numbers; 0 = the encoder's front end, an
#: option of `train-detector --blocks`); deeper blocks cost latency (see bench/).
CANDIDATE_BLOCKS: tuple[int, ...] = (1, 2, 3, 4)


def candidate_layer_sets(blocks: Sequence[int] = CANDIDATE_BLOCKS) -> tuple[tuple[int, ...], ...]:
    """Every non-empty subset of ``blocks``, smaller and shallower first (the order ties keep)."""
    blocks = sorted(set(blocks))
    return tuple(subset for size in range(1, len(blocks) + 1) for subset in itertools.combinations(blocks, size))


CANDIDATE_LAYER_SETS = candidate_layer_sets()
#: Inverse regularisation strengths, strongest first. 1e-4 and 3e-4 were added when the dev
#: optimum sat at the old grid's strong edge (0.001) for nearly every layer set.
CANDIDATE_C: tuple[float, ...] = (0.0001, 0.0003, 0.001, 0.01, 0.1)


def real_mel_profile(rows: Sequence[ManifestRow]) -> np.ndarray:
    """Mean over the real clips of ``rows`` of each clip's per-band log-mel mean: the long-term
    spectrum that channel normalisation puts back (80 values)."""
    real = [row for row in rows if not row.is_fake]
    if not real:
        raise ManifestError("channel normalisation needs real (bonafide) training clips")
    means = [
        whisper_log_mel(load_audio(row.path, DETECTION_LOAD_POLICY).samples).mean(axis=1)
        for row in tqdm(real, desc="mel profile (train real)", unit="clip", leave=False)
    ]
    return np.mean(means, axis=0).astype(np.float32)


def layer_extractor(
    whisper_model: str = "base",
    num_layers: int = 4,
    mel_profile: np.ndarray | None = None,
    pooling: Pooling = "mean-std",
    onnx_features: bool = False,
) -> WhisperLayerFeatures | OnnxLayerFeatures:
    """The pooled-layer extractor :func:`probe_features` uses (its ``cache_id`` keys the cache)."""
    if onnx_features:
        if mel_profile is not None:
            raise ValueError("ONNX features do not support channel normalisation")
        return OnnxLayerFeatures(whisper_model, num_layers=num_layers, pooling=pooling)
    return WhisperLayerFeatures(whisper_model, num_layers=num_layers, mel_profile=mel_profile, pooling=pooling)


def probe_features(
    train: Sequence[ManifestRow],
    dev: Sequence[ManifestRow],
    whisper_model: str = "base",
    num_layers: int = 4,
    mel_profile: np.ndarray | None = None,
    pooling: Pooling = "mean-std",
    onnx_features: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pooled Whisper features (clips, blocks, k·width) and labels of train and dev, through the
    feature cache: ``x_train, y_train, x_dev, y_dev``. ``mel_profile``: channel-normalise the
    log-mel first (:func:`services.detector.training.features.normalise_channel`); ``pooling``: which
    statistics (:func:`services.detector.training.features.pool_statistics`); ``onnx_features``:
    compute them through ONNX Runtime (:class:`OnnxLayerFeatures`, several times faster; not with a
    ``mel_profile``)."""
    extractor = layer_extractor(whisper_model, num_layers, mel_profile, pooling, onnx_features)
    cache = FeatureCache(extractor.cache_id)
    x_train = cache.features(train, extractor, "whisper features (train)")
    x_dev = cache.features(dev, extractor, "whisper features (dev)")
    return x_train, labels_of(train), x_dev, labels_of(dev)


def fit_probe_head(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_dev: np.ndarray,
    y_dev: np.ndarray,
    layers: Sequence[int],
    c_value: float,
) -> tuple[ProbeHead, float, float]:
    """Fit one probe candidate on pooled features (clips, blocks, k·width); return it with its
    dev EER and the dev EER threshold (the head's ``pooling`` is the caller's to set)."""

    columns = list(layers)  # row i of the pooled features is hidden state i
    flat_train = x_train[:, columns].reshape(len(x_train), -1)
    flat_dev = x_dev[:, columns].reshape(len(x_dev), -1)
    scaler = StandardScaler().fit(flat_train)
    classifier = LogisticRegression(C=c_value, class_weight="balanced", max_iter=3000)
    classifier.fit(scaler.transform(flat_train), y_train)
    dev_eer, threshold = equal_error_rate(y_dev, classifier.predict_proba(scaler.transform(flat_dev))[:, 1])
    head = ProbeHead(
        layers=tuple(layers),
        mean=scaler.mean_.astype(np.float32),
        scale=scaler.scale_.astype(np.float32),
        coef=classifier.coef_[0].astype(np.float32),
        intercept=float(classifier.intercept_[0]),
    )
    return head, dev_eer, threshold


def check_ensemble_size(ensemble: int, layer_sets: Sequence[tuple[int, ...]]) -> None:
    """ValueError unless 1 ≤ ``ensemble`` ≤ the number of distinct layer sets searched."""
    searched = len(set(map(tuple, layer_sets)))
    if not 1 <= ensemble <= searched:
        raise ValueError(f"only {searched} layer sets are searched; the ensemble needs 1 to {searched}")


def average_heads(heads: Sequence[ProbeHead]) -> ProbeHead:
    """One head whose logit is the mean of ``heads``' logits.

    The members are logistic regressions on the same standardised features, so the mean of their
    logits is linear in those features too: one head over the union of their layers, each
    member's coefficients in its layers' places, zeros elsewhere, averaged. Members must share
    pooling and channel normalisation.
    """
    if not heads:
        raise ValueError("average_heads needs at least one head")
    first = heads[0]
    if any(h.pooling != first.pooling or (h.mel_profile is None) != (first.mel_profile is None) for h in heads):
        raise ValueError("ensemble members must share pooling and channel normalisation")
    layers = tuple(sorted({layer for head in heads for layer in head.layers}))
    per_layer = first.mean.size // len(first.layers)
    mean = np.zeros(len(layers) * per_layer, np.float32)
    scale = np.ones_like(mean)
    coef = np.zeros_like(mean)
    for head in heads:
        for position, layer in enumerate(head.layers):
            source = slice(position * per_layer, (position + 1) * per_layer)
            target = slice(layers.index(layer) * per_layer, (layers.index(layer) + 1) * per_layer)
            # Every member standardised a layer with the same training columns: the same statistics.
            mean[target], scale[target] = head.mean[source], head.scale[source]
            coef[target] += head.coef[source] / len(heads)
    return ProbeHead(
        layers=layers,
        mean=mean,
        scale=scale,
        coef=coef,
        intercept=float(np.mean([head.intercept for head in heads])),
        mel_profile=first.mel_profile,
        pooling=first.pooling,
    )


def train_whisper_probe(
    manifest: Path | Sequence[Path],
    out_dir: Path,
    name: str = "default",
    whisper_model: str = "base",
    layer_sets: Sequence[tuple[int, ...]] = CANDIDATE_LAYER_SETS,
    c_values: Sequence[float] = CANDIDATE_C,
    channel_normalisation: bool = False,
    pooling: Pooling = "mean-std",
    ensemble: int = 1,
    onnx_features: bool = False,
    exclude_families: Sequence[str] = (),
    train_splits: Sequence[str] = TRAIN_SPLITS,
) -> TrainResult:
    """Logistic regression over pooled Whisper encoder layers; layers and C chosen on dev EER.

    ``channel_normalisation``: the encoder reads the log-mel with each band's clip mean replaced
    by the real training clips' average (:func:`real_mel_profile`), in training and in the
    exported graph alike. ``pooling``: the statistics per block
    (:func:`services.detector.training.features.pool_statistics`), likewise in both. ``ensemble``: above
    1, the model averages the logits of that many layer sets, those with the lowest dev EER,
    each at its best C (:func:`average_heads`); dev EER and threshold are the average's.
    """
    check_ensemble_size(ensemble, layer_sets)
    train, dev = split_rows(manifest, train_splits)
    if exclude_families:  # a leave-one-family-out model: that family is in neither train nor dev
        train = [row for row in train if row.family not in exclude_families]
        dev = [row for row in dev if row.family not in exclude_families]
    mel_profile = real_mel_profile(train) if channel_normalisation else None
    x_train, y_train, x_dev, y_dev = probe_features(
        train,
        dev,
        whisper_model,
        num_layers=max(max(layers) for layers in layer_sets),
        mel_profile=mel_profile,
        pooling=pooling,
        onnx_features=onnx_features,
    )

    search: list[dict] = []
    best_per_set: dict[tuple[int, ...], tuple[ProbeHead, dict]] = {}
    for layers, c_value in itertools.product(layer_sets, c_values):
        head, dev_eer, threshold = fit_probe_head(x_train, y_train, x_dev, y_dev, layers, c_value)
        search.append({"layers": list(layers), "C": c_value, "dev_eer": dev_eer, "threshold": threshold})
        # Strictly better only: on ties the earlier (fewer, shallower layers) candidate stays. The
        # tolerance keeps float noise from breaking ties (the same EER summed in another order).
        if tuple(layers) not in best_per_set or dev_eer < best_per_set[tuple(layers)][1]["dev_eer"] - 1e-9:
            best_per_set[tuple(layers)] = (head, search[-1])
    # sorted() is stable: among equal dev EERs the earlier layer set stays ahead.
    ranked = sorted(best_per_set.values(), key=lambda pair: round(pair[1]["dev_eer"], 9))
    if ensemble == 1:
        best_head, best = ranked[0]
    else:
        members = ranked[:ensemble]
        best_head = average_heads([head for head, _ in members])
        dev_eer, threshold = equal_error_rate(y_dev, best_head.probability(x_dev))
        best = {
            "layers": list(best_head.layers),
            "C": None,
            "dev_eer": dev_eer,
            "threshold": threshold,
            "ensemble": [entry for _, entry in members],
        }

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # The head reads features of the normalised log-mel, pooled so: the graph must do the same.
    replace(best_head, mel_profile=mel_profile, pooling=pooling).save(out_dir / "head.npz")
    spec = ModelSpec(
        name=name,
        kind="whisper-probe",
        threshold=best["threshold"],
        created=dt.date.today().isoformat(),
        whisper_model=whisper_model,
        layers=best["layers"],
        training=_summary(manifest, train, dev, train_splits)
        | {
            "channel_normalisation": channel_normalisation,
            "pooling": pooling,
            "feature_backend": "onnx" if onnx_features else "torch",
            "feature_layers": max(max(layers) for layers in layer_sets),
            "excluded_families": list(exclude_families),
            "selected": best,
            "search": search,
        },
    )
    spec.write(out_dir)
    spec.training["onnx_max_abs_difference"] = export_probe_onnx(out_dir, cache_dir() / "detector" / "check.onnx")
    spec.write(out_dir)
    return TrainResult(out_dir, best["dev_eer"], best["threshold"], spec.training)


def train_frames_model(
    manifest: Path | Sequence[Path],
    out_dir: Path,
    name: str = "frames",
    whisper_model: str = "base",
    config: FrameHeadConfig | None = None,
    recipe: FrameTraining | None = None,
    train_splits: Sequence[str] = TRAIN_SPLITS,
) -> TrainResult:
    """A ``whisper-frames`` model (:mod:`services.detector.training.frames`) on ``train_splits``,
    its epoch and threshold from dev; its ONNX graph exported and checked like the probe's."""
    train, dev = split_rows(manifest, train_splits)
    spec, result = train_whisper_frames(
        train,
        dev,
        out_dir,
        _summary(manifest, train, dev, train_splits),
        name,
        whisper_model,
        config or FrameHeadConfig(),
        recipe or FrameTraining(),
    )
    spec.training["onnx_max_abs_difference"] = export_probe_onnx(out_dir, cache_dir() / "detector" / "check.onnx")
    spec.write(out_dir)
    return TrainResult(Path(out_dir), result.dev_eer, result.threshold, spec.training)
