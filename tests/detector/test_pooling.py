"""Pooled statistics of the encoder's frames, and a head that reads their order through ONNX."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from services.detector.model_files import ModelSpec, ProbeHead
from services.detector.training.export import export_probe_onnx
from services.detector.training.features import pool_mean_std, pool_statistics
from shared.onnx_export import ONNX_TOLERANCE
from vcfad.cli import main


@settings(max_examples=40, deadline=None)
@given(
    frames=st.integers(min_value=2, max_value=60),
    width=st.integers(min_value=1, max_value=16),
    seed=st.integers(min_value=0, max_value=2**16),
)
def test_delta_reads_frame_order_mean_and_std_do_not(frames: int, width: int, seed: int):
    generator = torch.Generator().manual_seed(seed)
    hidden = torch.randn(2, frames, width, generator=generator)
    pooled = pool_statistics(hidden, "mean-std-delta")
    assert pooled.shape == (2, 3 * width)
    torch.testing.assert_close(pooled[:, : 2 * width], pool_mean_std(hidden))
    assert torch.equal(pool_statistics(hidden, "mean-std"), pool_mean_std(hidden))
    # Reversing time keeps every statistic; sorting each dimension keeps mean and std but makes the
    # trajectory as smooth as it can be, so the frame-to-frame change can only fall.
    torch.testing.assert_close(pool_statistics(hidden.flip(1), "mean-std-delta"), pooled)
    smoothest = pool_statistics(hidden.sort(dim=1).values, "mean-std-delta")
    torch.testing.assert_close(smoothest[:, : 2 * width], pooled[:, : 2 * width])
    assert torch.all(smoothest[:, 2 * width :] <= pooled[:, 2 * width :] + 1e-6)


def test_delta_of_a_ramp_is_its_slope():
    time = torch.arange(50, dtype=torch.float32)
    hidden = torch.stack([0.3 * time, -2.0 * time + 1.0, torch.full_like(time, 4.0)], dim=-1)[None]
    delta = pool_statistics(hidden, "mean-std-delta")[0, 6:]
    torch.testing.assert_close(delta, torch.tensor([0.3, 2.0, 1e-4]), rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="pooling 'median'"):
        pool_statistics(hidden, "median")  # type: ignore[arg-type]


def _random_head(layers: tuple[int, ...], pooling: str, width: int = 512) -> ProbeHead:
    rng = np.random.default_rng(0)
    size = len(layers) * (3 if pooling == "mean-std-delta" else 2) * width
    return ProbeHead(
        layers=layers,
        mean=rng.normal(size=size).astype(np.float32),
        scale=rng.uniform(0.5, 2.0, size=size).astype(np.float32),
        coef=(rng.normal(size=size) * 0.01).astype(np.float32),
        intercept=0.1,
        pooling=pooling,  # type: ignore[arg-type]
    )


def test_head_file_keeps_its_pooling_and_refuses_unknown_ones(tmp_path: Path):
    head = _random_head((1, 2), "mean-std-delta")
    head.save(tmp_path / "delta.npz")
    assert ProbeHead.load(tmp_path / "delta.npz").pooling == "mean-std-delta"
    # A mean-std head writes no pooling entry, so its bytes (and its cached graph's key) stay.
    _random_head((1,), "mean-std").save(tmp_path / "plain.npz")
    with np.load(tmp_path / "plain.npz") as data:
        assert "pooling" not in data.files
    assert ProbeHead.load(tmp_path / "plain.npz").pooling == "mean-std"
    with np.load(tmp_path / "delta.npz") as data:
        arrays = dict(data)
    np.savez(tmp_path / "bad.npz", **(arrays | {"pooling": np.array("median")}))
    with pytest.raises(ValueError, match=re.escape("bad.npz: pooling 'median'")):
        ProbeHead.load(tmp_path / "bad.npz")


def test_delta_head_exports_to_onnx_within_tolerance(tmp_path: Path):
    _random_head((1, 2), "mean-std-delta").save(tmp_path / "head.npz")
    ModelSpec(
        name="delta",
        kind="whisper-probe",
        threshold=0.5,
        created=dt.date.today().isoformat(),
        whisper_model="base",
        layers=[1, 2],
    ).write(tmp_path)
    # export_probe_onnx raises above the tolerance; the returned worst case is checked all the same.
    assert export_probe_onnx(tmp_path, tmp_path / "graph.onnx") <= ONNX_TOLERANCE


def test_pooling_is_a_whisper_probe_option(tmp_path: Path, capsys):
    argv = ["train-detector", "--kind", "seed-baseline", "--pooling", "mean-std-delta"]
    assert main([*argv, "--manifest", str(tmp_path / "m.tsv"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert "--pooling applies to --kind whisper-probe only" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out").exists()
