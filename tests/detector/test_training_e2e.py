"""A tiny end-to-end run: build a dataset, train both models, score held-out generators through ONNX."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from services.detector.evaluation.evaluate import augment_steps, evaluate, manifest_rows
from services.detector.inference import Detector
from services.detector.training.manifest import read_manifest
from services.detector.training.train import split_rows, train_seed_baseline, train_whisper_probe
from shared.metrics import equal_error_rate
from vcfad.cli import main as vcfad_main

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny_manifest(shared_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tiny-dataset")
    assert vcfad_main(["data", "build", str(REPO_ROOT / "configs/detector/tiny.toml"), "--output-dir", str(out)]) == 0
    return out / "manifest.tsv"


@pytest.mark.slow
def test_probe_trains_and_beats_chance_on_unseen_generators(tiny_manifest: Path, tmp_path: Path):
    result = train_whisper_probe(tiny_manifest, tmp_path / "probe", name="tiny-probe", layer_sets=[(1, 4)])
    spec = json.loads((tmp_path / "probe" / "model.json").read_text())
    assert spec["kind"] == "whisper-probe" and spec["layers"] == [1, 4]
    assert spec["training"]["onnx_max_abs_difference"] <= 1e-4
    assert 0.0 <= result.threshold <= 1.0

    detector = Detector.from_model_dir(tmp_path / "probe")
    [summary] = evaluate([detector], [tiny_manifest], tmp_path / "report", split="test")
    # The test split's fake system and speakers are in neither train nor dev; chance is 50 %.
    assert summary["overall"]["count"] >= 20
    assert summary["overall"]["eer"] < 0.35
    assert (tmp_path / "report" / "det.png").stat().st_size > 1000
    assert summary["calibration"]["balanced"]["expected_calibration_error"] < 0.5

    # The same evaluation read back from its scores.tsv (no model run), then sliced: without the
    # clips that went through the commonest channel step that not every clip has, from the same scores.
    scores = tmp_path / "report" / "scores.tsv"
    [again] = evaluate([detector], [tiny_manifest], split="test", scores_from=scores)
    assert again["overall"]["eer"] == pytest.approx(summary["overall"]["eer"], abs=1e-6)
    rows = manifest_rows([tiny_manifest], split="test")
    counts = Counter(step for row in rows for step in augment_steps(row))
    step = next(step for step, count in counts.most_common() if count < len(rows))
    kept = [row for row in rows if step not in augment_steps(row)]
    assert 0 < len(kept) < len(rows)
    [sliced] = evaluate([detector], [tiny_manifest], split="test", without_steps=[step], scores_from=scores)
    assert sliced["overall"]["count"] == len(kept)

    # set-threshold on dev reproduces training's EER point through the served ONNX graph; a bound
    # on false alarms then holds on those real clips, and each change is recorded in model.json.
    args = ["set-threshold", "--model", str(tmp_path / "probe"), "--manifest", str(tiny_manifest), "--split", "dev"]
    assert vcfad_main(args) == 0
    assert json.loads((tmp_path / "probe" / "model.json").read_text())["threshold"] == pytest.approx(
        result.threshold, abs=1e-3
    )
    assert vcfad_main([*args, "--false-alarm-rate", "0.1"]) == 0
    spec = json.loads((tmp_path / "probe" / "model.json").read_text())
    assert [entry["rule"] for entry in spec["training"]["threshold_history"]] == ["eer", "false_alarm_rate<=0.1"]
    [dev] = evaluate([Detector.from_model_dir(tmp_path / "probe")], [tiny_manifest], split="dev")
    assert dev["overall"]["threshold"] == spec["threshold"] and dev["overall"]["false_alarm_rate"] <= 0.1


@pytest.mark.slow
def test_seed_baseline_onnx_equals_scikit_learn(tiny_manifest: Path, tmp_path: Path):
    # train_seed_baseline raises when the ONNX graph disagrees with scikit-learn by more than 1e-4.
    result = train_seed_baseline(tiny_manifest, tmp_path / "seed")
    assert result.details["onnx_max_abs_difference"] <= 1e-4
    detector = Detector.from_model_dir(tmp_path / "seed")
    rows = [line.split("\t") for line in tiny_manifest.read_text().splitlines()[1:]]
    detection = detector.detect(tiny_manifest.parent / rows[0][0], timeline=True)
    assert 0.0 <= detection.score <= 1.0 and detection.label in ("fake", "real")
    assert detection.timeline and all(0.0 <= w.score <= 1.0 for w in detection.timeline)

    # Compared beside the shipped model of the same name, each keeps its own column in the reports.
    shipped = Detector.from_model_dir(REPO_ROOT / "models/detector/seed-baseline")
    assert shipped.name == detector.name
    summaries = evaluate([shipped, detector], [tiny_manifest], tmp_path / "compare", split="test")
    labels = [summary["model"] for summary in summaries]
    assert len(set(labels)) == 2 and str(tmp_path / "seed") in labels[1]
    assert all(label in (tmp_path / "compare" / "report.md").read_text() for label in labels)


@pytest.mark.slow
def test_refit_learns_from_test_too_and_keeps_dev_for_the_threshold(tiny_manifest: Path, tmp_path: Path):
    rows = read_manifest(tiny_manifest)
    counts = {split: sum(row.split == split for row in rows) for split in ("train", "dev", "test")}
    assert vcfad_main(["train-detector", "--kind", "seed-baseline", "--refit", "--manifest", str(tiny_manifest),
                       "--out", str(tmp_path / "refit")]) == 0  # fmt: skip
    training = json.loads((tmp_path / "refit" / "model.json").read_text())["training"]
    assert training["train_splits"] == ["train", "test"]
    assert training["train_clips"] == counts["train"] + counts["test"] and training["dev_clips"] == counts["dev"]
    test_systems = {row.system for row in rows if row.split == "test" and row.is_fake}
    assert test_systems <= set(training["train_fake_systems"])
    # The threshold is the EER point of the dev split, which the refit never learnt from.
    detector = Detector.from_model_dir(tmp_path / "refit")
    dev = [row for row in rows if row.split == "dev"]
    scores = np.array([detector.detect(row.path).score for row in dev])
    eer, threshold = equal_error_rate(np.array([row.is_fake for row in dev], dtype=int), scores)
    assert detector.threshold == pytest.approx(threshold, abs=1e-3) and training["dev_eer"] == pytest.approx(
        eer, abs=1e-3
    )
    with pytest.raises(ValueError, match="dev split"):
        split_rows(tiny_manifest, ("train", "dev"))


@pytest.mark.slow
def test_channel_normalised_probe_ignores_a_fixed_channel(tiny_manifest: Path, tmp_path: Path):
    import dataclasses

    import numpy as np
    import torch

    from services.detector.model_files import ProbeHead
    from services.detector.training.export import build_probe_network
    from services.detector.training.manifest import read_manifest, select
    from services.detector.training.train import real_mel_profile

    result = train_whisper_probe(
        tiny_manifest, tmp_path / "cmn", layer_sets=[(1, 4)], c_values=(0.001,), channel_normalisation=True
    )
    assert result.details["channel_normalisation"] is True
    assert result.details["onnx_max_abs_difference"] <= 1e-4  # the normalisation is inside the graph
    head = ProbeHead.load(tmp_path / "cmn" / "head.npz")
    train_rows = select(read_manifest(tiny_manifest), "train")
    np.testing.assert_allclose(head.mel_profile, real_mel_profile(train_rows), atol=1e-6)

    # A recording channel adds one constant per mel band to the log-mel: the normalised model's
    # score does not move, the same head reading the raw log-mel does.
    generator = torch.Generator().manual_seed(0)
    log_mel = torch.randn(2, 80, 200, generator=generator) * 0.4
    channel = torch.linspace(-0.5, 0.3, 80)[None, :, None]
    normalised = build_probe_network(head)
    raw = build_probe_network(dataclasses.replace(head, mel_profile=None))
    with torch.inference_mode():
        assert torch.allclose(normalised(log_mel + channel), normalised(log_mel), atol=1e-5)
        assert not torch.allclose(raw(log_mel + channel), raw(log_mel), atol=1e-3)

    # Served through ONNX, it still tells unseen generators apart. The test split has 24 clips, so
    # the bound is chance, not the 0.35 the raw-input model is held to above.
    [summary] = evaluate([Detector.from_model_dir(tmp_path / "cmn")], [tiny_manifest], split="test")
    assert summary["overall"]["eer"] < 0.5


@pytest.mark.slow
def test_delta_pooled_probe_trains_and_serves_its_pooling(tiny_manifest: Path, tmp_path: Path):
    from services.detector.model_files import ProbeHead

    argv = ["train-detector", "--manifest", str(tiny_manifest), "--out", str(tmp_path / "delta")]
    assert vcfad_main([*argv, "--pooling", "mean-std-delta"]) == 0
    spec = json.loads((tmp_path / "delta" / "model.json").read_text())
    assert spec["training"]["pooling"] == "mean-std-delta"
    assert spec["training"]["onnx_max_abs_difference"] <= 1e-4  # the third statistic is in the graph
    head = ProbeHead.load(tmp_path / "delta" / "head.npz")
    assert head.pooling == "mean-std-delta" and head.coef.size == len(head.layers) * 3 * 512
    # Unseen generator, 24 test clips: the bound is chance (as for channel normalisation above).
    [summary] = evaluate([Detector.from_model_dir(tmp_path / "delta")], [tiny_manifest], split="test")
    assert summary["overall"]["eer"] < 0.5


@pytest.mark.slow
def test_probe_on_the_encoders_front_end_trains_and_serves(tiny_manifest: Path, tmp_path: Path):
    argv = ["train-detector", "--manifest", str(tiny_manifest), "--out", str(tmp_path / "front")]
    assert vcfad_main([*argv, "--blocks", "0,1"]) == 0
    spec = json.loads((tmp_path / "front" / "model.json").read_text())
    assert {tuple(entry["layers"]) for entry in spec["training"]["search"]} == {(0,), (1,), (0, 1)}
    assert spec["training"]["onnx_max_abs_difference"] <= 1e-4  # hidden state 0 is read in the graph too
    # Unseen generator, 24 test clips: the bound is chance (as for channel normalisation above).
    [summary] = evaluate([Detector.from_model_dir(tmp_path / "front")], [tiny_manifest], split="test")
    assert summary["overall"]["eer"] < 0.5


@pytest.mark.slow
def test_ensemble_of_layer_sets_trains_and_serves_as_one_head(tiny_manifest: Path, tmp_path: Path):
    import numpy as np

    from services.detector.model_files import ProbeHead
    from services.detector.training.manifest import read_manifest, select
    from services.detector.training.train import probe_features, split_rows

    argv = ["train-detector", "--manifest", str(tiny_manifest), "--out", str(tmp_path / "ensemble")]
    assert vcfad_main([*argv, "--ensemble", "3"]) == 0
    spec = json.loads((tmp_path / "ensemble" / "model.json").read_text())
    members = spec["training"]["selected"]["ensemble"]
    assert len(members) == 3 and len({tuple(member["layers"]) for member in members}) == 3
    # The members are the three layer sets with the lowest dev EER, each at its best C.
    best_per_set: dict[tuple[int, ...], float] = {}
    for entry in spec["training"]["search"]:
        best_per_set[tuple(entry["layers"])] = min(entry["dev_eer"], best_per_set.get(tuple(entry["layers"]), 1.0))
    assert sorted(member["dev_eer"] for member in members) == sorted(best_per_set.values())[:3]
    assert spec["layers"] == sorted({layer for member in members for layer in member["layers"]})
    assert spec["training"]["onnx_max_abs_difference"] <= 1e-4

    # The served graph gives the combined head's scores, whose EER point is the model's threshold.
    head = ProbeHead.load(tmp_path / "ensemble" / "head.npz")
    _, dev = split_rows(tiny_manifest)
    x_dev = probe_features(dev, dev)[2]  # from the feature cache training filled
    served = Detector.from_model_dir(tmp_path / "ensemble")
    scores = [served.detect(row.path).score for row in select(read_manifest(tiny_manifest), "dev")[:5]]
    np.testing.assert_allclose(scores, head.probability(x_dev[:5]), atol=1e-4)
    [summary] = evaluate([served], [tiny_manifest], split="test")
    assert summary["overall"]["eer"] < 0.5


@pytest.mark.slow
def test_onnx_features_equal_torch_and_pooled_manifests_train_with_a_family_left_out(
    tiny_manifest: Path, tmp_path: Path
) -> None:
    import numpy as np

    from services.detector.training.features import WhisperLayerFeatures
    from services.detector.training.manifest import read_manifest
    from services.detector.training.onnx_features import OnnxLayerFeatures
    from shared.audio import load_audio

    # The ONNX extractor gives the torch extractor's pooled rows on real clips.
    rows = read_manifest(tiny_manifest)[:4]
    onnx, torch_features = OnnxLayerFeatures(num_layers=2), WhisperLayerFeatures(num_layers=2)
    for row in rows:
        audio = load_audio(row.path)
        expected = torch_features(audio)
        np.testing.assert_allclose(onnx(audio), expected, atol=1e-4 * (1 + float(np.abs(expected).max())))

    # A second manifest (the tiny build's rows, other family name, absolute paths) pooled with the
    # first: its family can be left out of train and dev.
    second = tmp_path / "second.tsv"
    header, *lines = tiny_manifest.read_text(encoding="utf-8").splitlines()
    columns = header.split("\t")
    kept = [header]
    for line in lines:
        fields = line.split("\t")
        if fields[columns.index("label")] == "spoof":
            fields[columns.index("path")] = str(tiny_manifest.parent / fields[columns.index("path")])
            fields[columns.index("family")] = "pooled-copy"
            kept.append("\t".join(fields))
    second.write_text("\n".join(kept) + "\n", encoding="utf-8")
    argv = ["train-detector", "--manifest", str(tiny_manifest), "--manifest", str(second), "--onnx-features"]
    assert (
        vcfad_main([*argv, "--out", str(tmp_path / "lofo"), "--blocks", "1,2", "--exclude-family", "pooled-copy"]) == 0
    )
    training = json.loads((tmp_path / "lofo" / "model.json").read_text())["training"]
    assert training["feature_backend"] == "onnx" and training["excluded_families"] == ["pooled-copy"]
    assert training["manifest"] == [str(tiny_manifest), str(second)]
    assert training["train_clips"] == len([r for r in read_manifest(tiny_manifest) if r.split == "train"])
    assert vcfad_main([*argv, "--out", str(tmp_path / "pooled"), "--blocks", "1,2"]) == 0
    pooled = json.loads((tmp_path / "pooled" / "model.json").read_text())["training"]
    assert pooled["train_clips"] > training["train_clips"]
    assert vcfad_main([*argv, "--out", str(tmp_path / "x"), "--channel-normalisation"]) == 2
    # Leave-one-family-out with the pooled model's recipe: each family refit away, EER on it.
    report = tmp_path / "families"
    families = ["eval-families", "--manifest", str(tiny_manifest), "--manifest", str(second)]
    assert vcfad_main([*families, "--model", str(tmp_path / "pooled"), "--out", str(report)]) == 0
    results = {entry["family"]: entry for entry in json.loads((report / "families.json").read_text())}
    assert "pooled-copy" in results and "classical-tts" in results
    for entry in results.values():
        assert entry["fake_clips"] > 0 and entry["real_clips"] > 0
        assert 0.0 <= entry["eer_left_out"] <= 1.0 and 0.0 <= entry["eer_all_families"] <= 1.0
    assert "| pooled-copy |" in (report / "families.md").read_text()
    assert vcfad_main([*families, "--model", str(tmp_path / "pooled"), "--family", "no-such-family"]) == 2


@pytest.mark.slow
def test_frame_model_trains_exports_and_beats_chance(tiny_manifest: Path, tmp_path: Path):
    assert vcfad_main(["train-detector", "--kind", "whisper-frames", "--manifest", str(tiny_manifest),
                       "--out", str(tmp_path / "frames"), "--epochs", "8"]) == 0  # fmt: skip
    spec = json.loads((tmp_path / "frames" / "model.json").read_text())
    assert spec["kind"] == "whisper-frames" and spec["layers"] == [1, 2, 3]
    assert spec["training"]["onnx_max_abs_difference"] <= 1e-4
    # The kept epoch is the one with the lowest dev EER, and the threshold is that epoch's.
    history = spec["training"]["history"]
    assert spec["training"]["selected"]["dev_eer"] == min(entry["dev_eer"] for entry in history)

    [summary] = evaluate([Detector.from_model_dir(tmp_path / "frames")], [tiny_manifest], split="test")
    # The test split's fake system and speakers are in neither train nor dev; chance is 50 %.
    assert summary["overall"]["eer"] < 0.4
    # The served graph scores dev as training did: the same EER at the stored threshold's point.
    [dev] = evaluate([Detector.from_model_dir(tmp_path / "frames")], [tiny_manifest], split="dev")
    assert dev["overall"]["eer"] == pytest.approx(spec["training"]["selected"]["dev_eer"], abs=1e-6)


def test_frame_option_errors_name_the_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    manifest = tmp_path / "manifest.tsv"
    manifest.write_text("path\tlabel\n")
    probe_args = ["train-detector", "--manifest", str(manifest), "--out", str(tmp_path / "m")]
    assert vcfad_main([*probe_args, "--epochs", "3"]) != 0
    assert "--epochs applies to --kind whisper-frames only" in capsys.readouterr().err
    args = ["train-detector", "--kind", "whisper-frames", "--manifest", str(manifest), "--out", str(tmp_path / "m")]
    assert vcfad_main([*args, "--pooling", "mean-std-delta"]) != 0
    assert "--pooling applies to --kind whisper-probe only" in capsys.readouterr().err
    # A refit learns from the test split too: manifests without one are refused, not trained as usual.
    manifest.write_text("path\tlabel\tsplit\na.wav\tbonafide\ttrain\nb.wav\tspoof\ttrain\n")
    assert vcfad_main(["train-detector", "--kind", "seed-baseline", "--refit", *probe_args[1:]]) == 2
    err = capsys.readouterr().err
    assert "no rows of the test split" in err and "Traceback" not in err
    assert not (tmp_path / "m").exists()
