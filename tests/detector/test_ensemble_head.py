"""An ensemble of probe heads is one head: the mean of the members' logits, exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.detector.model_files import ProbeHead
from services.detector.training.train import average_heads
from vcfad.cli import main

WIDTH = 6  # per-layer feature count (2 statistics × 3 dimensions): small, the algebra is the same


def _head(layers: tuple[int, ...], rng: np.random.Generator, mean: np.ndarray, scale: np.ndarray) -> ProbeHead:
    columns = np.concatenate([np.arange(layer * WIDTH, (layer + 1) * WIDTH) for layer in layers])
    return ProbeHead(
        layers=layers,
        mean=mean[columns],
        scale=scale[columns],
        coef=rng.normal(size=columns.size).astype(np.float32),
        intercept=float(rng.normal()),
    )


@settings(max_examples=30, deadline=None)
@given(
    member_layers=st.lists(
        st.sets(st.integers(min_value=0, max_value=4), min_size=1).map(lambda s: tuple(sorted(s))),
        min_size=1,
        max_size=5,
    ),
    seed=st.integers(min_value=0, max_value=2**16),
)
def test_average_of_heads_is_the_mean_of_their_logits(member_layers: list[tuple[int, ...]], seed: int):
    rng = np.random.default_rng(seed)
    # One standardisation per training column, as StandardScaler fitted on the same training clips.
    mean = rng.normal(size=5 * WIDTH).astype(np.float32)
    scale = rng.uniform(0.5, 2.0, size=5 * WIDTH).astype(np.float32)
    heads = [_head(layers, rng, mean, scale) for layers in member_layers]
    combined = average_heads(heads)
    assert combined.layers == tuple(sorted({layer for layers in member_layers for layer in layers}))
    pooled = (rng.normal(size=(7, 5, WIDTH)) * 0.3).astype(np.float32)
    expected = np.mean([head.logit(pooled) for head in heads], axis=0)
    np.testing.assert_allclose(combined.logit(pooled), expected, rtol=1e-5, atol=1e-5)


def test_members_must_share_their_input():
    rng = np.random.default_rng(0)
    mean, scale = np.zeros(5 * WIDTH, np.float32), np.ones(5 * WIDTH, np.float32)
    plain = _head((1,), rng, mean, scale)
    other = ProbeHead(
        layers=(1,),
        mean=np.zeros(3 * WIDTH // 2, np.float32),
        scale=np.ones(3 * WIDTH // 2, np.float32),
        coef=np.zeros(3 * WIDTH // 2, np.float32),
        intercept=0.0,
        pooling="mean-std-delta",
    )
    with pytest.raises(ValueError, match="share pooling"):
        average_heads([plain, other])
    with pytest.raises(ValueError, match="at least one head"):
        average_heads([])


@pytest.mark.parametrize(
    ("extra", "message", "usage_error"),
    [
        (["--ensemble", "0"], "must be at least 1", True),
        (["--ensemble", "two"], "expected a whole number", True),
        (["--ensemble", "4", "--blocks", "0,1"], "--ensemble 4: only 3 layer sets are searched", False),
        (["--kind", "seed-baseline", "--ensemble", "3"], "--ensemble applies to --kind whisper-probe only", False),
    ],
)
def test_bad_ensemble_sizes_are_refused(tmp_path: Path, capsys, extra: list[str], message: str, usage_error: bool):
    argv = ["train-detector", "--manifest", str(tmp_path / "m.tsv"), "--out", str(tmp_path / "out"), *extra]
    if usage_error:
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2
    else:
        assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()
