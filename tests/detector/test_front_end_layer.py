"""The encoder's front end (hidden state 0) as a layer the probe head may read."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from services.detector.inference import DETECTION_LOAD_POLICY
from services.detector.model_files import ModelFileError, ModelSpec, ProbeHead
from services.detector.training.export import build_probe_network
from services.detector.training.features import WhisperLayerFeatures
from services.detector.training.train import candidate_layer_sets
from shared.audio import load_audio
from shared.log_mel import whisper_log_mel
from vcfad.cli import main


def _head(layers: tuple[int, ...], width: int = 512) -> ProbeHead:
    rng = np.random.default_rng(1)
    size = len(layers) * 2 * width
    return ProbeHead(
        layers=layers,
        mean=rng.normal(scale=0.1, size=size).astype(np.float32),
        scale=rng.uniform(0.5, 2.0, size=size).astype(np.float32),
        coef=(rng.normal(size=size) * 0.02).astype(np.float32),
        intercept=-0.2,
    )


@pytest.mark.parametrize("layers", [(0,), (0, 2), (1, 3)])
def test_graph_reads_the_rows_training_reads(librispeech_clip: Path, layers: tuple[int, ...]):
    # Training fits the head on WhisperLayerFeatures rows; the served network pools the encoder's
    # hidden states itself. Both must mean the same thing by a layer number, front end included.
    audio = load_audio(librispeech_clip, DETECTION_LOAD_POLICY)
    pooled = WhisperLayerFeatures("base", num_layers=4)(audio)
    assert pooled.shape == (5, 1024)
    head = _head(layers)
    with torch.inference_mode():
        served = build_probe_network(head)(torch.from_numpy(whisper_log_mel(audio.samples))[None]).numpy()
    np.testing.assert_allclose(served, head.probability(pooled[None]), atol=1e-5)
    # Read one row off (the numbering before the front end was a row) and the score moves: the
    # check above can fail.
    off_by_one = dataclasses.replace(head, layers=tuple(layer + 1 for layer in layers))
    assert np.max(np.abs(off_by_one.probability(pooled[None]) - served)) > 1e-4


def test_front_end_head_exports_and_reloads(tmp_path: Path):
    _head((0, 1)).save(tmp_path / "head.npz")
    ModelSpec(
        name="front-end", kind="whisper-probe", threshold=0.5, created=dt.date.today().isoformat(), layers=[0, 1]
    ).write(tmp_path)
    from services.detector.training.export import export_probe_onnx
    from shared.onnx_export import ONNX_TOLERANCE

    assert ProbeHead.load(tmp_path / "head.npz").layers == (0, 1)
    assert export_probe_onnx(tmp_path, tmp_path / "graph.onnx") <= ONNX_TOLERANCE


@pytest.mark.parametrize("layers", [(), (-1, 2), (2, 2)])
def test_head_refuses_impossible_layers(tmp_path: Path, layers: tuple[int, ...]):
    with pytest.raises(ValueError, match="layers must be distinct"):
        _head(layers)
    arrays = {"layers": np.array(layers, dtype=int), "mean": np.zeros(2), "scale": np.ones(2)}
    np.savez(tmp_path / "head.npz", **arrays, coef=np.zeros(2), intercept=np.array([0.0]))
    with pytest.raises(ModelFileError, match=re.escape("head.npz: layers must be distinct")):
        ProbeHead.load(tmp_path / "head.npz")


def test_candidate_layer_sets_are_every_subset_smallest_first():
    assert candidate_layer_sets((1, 0)) == ((0,), (1,), (0, 1))
    assert len(candidate_layer_sets((0, 1, 2, 3, 4))) == 31
    assert candidate_layer_sets()[-1] == (1, 2, 3, 4)  # the default search is unchanged


@pytest.mark.parametrize(
    ("blocks", "message"),
    [
        ("0,9", "blocks must be distinct numbers in 0..6"),
        ("1,1", "blocks must be distinct numbers in 0..6"),
        ("first", "expected comma-separated block numbers"),
    ],
)
def test_bad_blocks_are_a_usage_error(tmp_path: Path, capsys, blocks: str, message: str):
    argv = ["train-detector", "--manifest", str(tmp_path / "m.tsv"), "--out", str(tmp_path / "out")]
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--blocks", blocks])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_blocks_is_a_whisper_encoder_option(tmp_path: Path, capsys):
    argv = ["train-detector", "--kind", "seed-baseline", "--blocks", "0,1"]
    assert main([*argv, "--manifest", str(tmp_path / "m.tsv"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert "--blocks applies to --kind whisper-probe and whisper-frames only" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out").exists()
