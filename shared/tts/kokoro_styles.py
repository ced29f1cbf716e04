"""Kokoro's style space and graph inputs: pure numpy helpers below both the TTS wrapper and the
fast-graph builder (``shared.tts.kokoro`` and ``shared.tts.kokoro_quantize`` both use them)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

#: Width of one Kokoro style vector.
STYLE_DIM = 256


def model_feed(tokens: list[int], table: np.ndarray, speed: float = 1.0) -> dict[str, np.ndarray]:
    """The Kokoro graph's inputs for ``tokens`` spoken with style ``table`` ((N, 256): row i is the
    style for i + 1 tokens) at ``speed``: the tokens padded with the boundary token 0 each side."""
    vector = table[min(len(tokens), len(table)) - 1]
    return {
        "tokens": np.array([[0, *tokens, 0]], dtype=np.int64),
        "style": vector.reshape(1, STYLE_DIM).astype(np.float32),
        "speed": np.array([speed], dtype=np.float32),
    }


def stacked_packs(packs: Mapping[str, np.ndarray]) -> np.ndarray:
    """The style packs as one (n_packs, 510, 256) array, in name order."""
    return np.stack([packs[name] for name in sorted(packs)])


def style_spread(stacked: np.ndarray) -> np.ndarray:
    """Per-dimension spread of the packs' mean styles: the scale of a natural step in style space
    (the cloner's style bank and the fast graph's calibration both draw offsets in it)."""
    return stacked.mean(axis=1).std(axis=0) + 1e-3
