"""Leave-one-family-out: how well a recipe catches a kind of synthesis it never saw.

For each fake family of the manifests (``family`` column: acoustic-model, vocoder, end-to-end,
codec-lm, flow-matching, diffusion, voice-conversion, classical for the external catalogue; the
default build's own families too), the model's recipe (its layers and regularisation, from its
``model.json``) is refit on the training split without that family, and scored on every clip of
the family (all splits: it saw none of them) against the real clips of dev and test (speakers and
pages it did not train on). Features come from the training feature cache, so a run after
``train-detector`` costs a few logistic regressions.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from services.detector.model_files import ModelSpec
from services.detector.training.feature_cache import FeatureCache
from services.detector.training.manifest import ManifestError, read_manifest
from services.detector.training.train import fit_probe_head, labels_of, layer_extractor
from shared.metrics import equal_error_rate


@dataclass(frozen=True)
class FamilyResult:
    family: str
    fake_clips: int
    real_clips: int
    #: EER of the model refit without the family, on the family's clips against held-out real ones.
    eer_left_out: float
    #: The same clips scored by the recipe fit on every family (the gap is what the family taught).
    eer_all_families: float


def leave_one_family_out(
    manifests: Sequence[Path], model_dir: Path, families: Sequence[str] | None = None, onnx_features: bool = True
) -> list[FamilyResult]:
    """One :class:`FamilyResult` per fake family (or per ``families`` given), with the recipe of
    the ``whisper-probe`` model in ``model_dir``."""
    spec = ModelSpec.read(model_dir)
    selected = spec.training.get("selected") or {}
    if spec.kind != "whisper-probe" or not selected.get("C"):
        raise ManifestError(f"{model_dir}: needs a whisper-probe model trained with one layer set (model.json)")
    layers, c_value = tuple(selected["layers"]), float(selected["C"])
    # The feature cache is keyed by how many blocks were computed: use training's own count.
    feature_layers = int(spec.training.get("feature_layers") or max(layers))
    pooling = spec.training.get("pooling", "mean-std")
    rows = [row for path in manifests for row in read_manifest(path)]
    train = [row for row in rows if row.split == "train"]
    held_out_real = [row for row in rows if row.split in ("dev", "test") and not row.is_fake]
    present = sorted({row.family for row in rows if row.is_fake and row.family})
    chosen = list(families) if families else present
    unknown = sorted(set(chosen) - set(present))
    if unknown:
        raise ManifestError(f"no fake clips of family {', '.join(unknown)} in the manifests")
    # Checked before any feature is computed (minutes on a built corpus), each with its own message.
    if not chosen:
        raise ManifestError("no fake clip has a `family` in the manifests (a built corpus has one: vcfad data build)")
    if {row.is_fake for row in train} != {False, True}:
        raise ManifestError("the manifests' train split needs real and fake clips to refit the recipe on")
    if not held_out_real:
        raise ManifestError("no real clips in the manifests' dev or test split to score the families against")
    if alone := [f for f in chosen if all(row.family == f for row in train if row.is_fake)]:
        raise ManifestError(f"every fake training clip is of family {alone[0]}: without it nothing is left to refit on")
    # One extractor (one ONNX session) and one feature cache for every set scored here.
    extractor = layer_extractor(spec.whisper_model, feature_layers, pooling=pooling, onnx_features=onnx_features)
    cache = FeatureCache(extractor.cache_id)
    x_train = cache.features(train, extractor, "whisper features (train)")
    y_train = labels_of(train)
    x_real = cache.features(held_out_real, extractor, "whisper features (held-out real)")
    train_family = np.array([row.family for row in train])
    everything = None
    results = []
    for family in chosen:
        fakes = [row for row in rows if row.is_fake and row.family == family]
        x_fake = cache.features(fakes, extractor, f"whisper features ({family})")
        labels = np.r_[np.zeros(len(x_real), int), np.ones(len(x_fake), int)]
        features = np.concatenate([x_real, x_fake])
        keep = train_family != family
        # fit_probe_head's EER on its "dev" arguments is the left-out family's EER here.
        _, eer_left_out, _ = fit_probe_head(x_train[keep], y_train[keep], features, labels, layers, c_value)
        if everything is None:
            everything = fit_probe_head(x_train, y_train, features, labels, layers, c_value)[0]
        results.append(
            FamilyResult(
                family=family,
                fake_clips=len(fakes),
                real_clips=len(x_real),
                eer_left_out=eer_left_out,
                eer_all_families=equal_error_rate(labels, everything.probability(features))[0],
            )
        )
    return results


def families_markdown(results: Sequence[FamilyResult], model_dir: Path, manifests: Sequence[Path]) -> str:
    lines = [
        f"Leave-one-family-out with the recipe of `{model_dir}` (its layers and C), on "
        + ", ".join(f"`{path}`" for path in manifests)
        + ": each family's clips (all splits) against the real clips of dev and test.",
        "",
        "| family left out | fake clips | real clips | EER, family never seen | EER, trained on every family |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.family} | {r.fake_clips} | {r.real_clips} | {100 * r.eer_left_out:.1f} % | "
            f"{100 * r.eer_all_families:.1f} % |"
        )
    return "\n".join(lines)


def write_family_report(results: Sequence[FamilyResult], model_dir: Path, manifests: Sequence[Path], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "families.md").write_text(families_markdown(results, model_dir, manifests) + "\n", encoding="utf-8")
    payload = [result.__dict__ for result in results]
    (out / "families.json").write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
