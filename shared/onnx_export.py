"""ONNX export of networks that read a log-mel, and the parity check against torch.

The detector's Whisper probe and the speaker judge are both exported this way: input
``log_mel`` ``(batch, n_mels, frames)`` with batch and frames dynamic, one output; a graph is
accepted only if it matches the torch network within :data:`ONNX_TOLERANCE`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime
import torch

#: Largest difference allowed between an exported graph and its torch network.
ONNX_TOLERANCE = 1e-4


def export_log_mel_network(network: torch.nn.Module, path: Path, output_name: str, n_mels: int = 80) -> None:
    """Export a module that reads a log-mel (batch, n_mels, frames) to ONNX, batch and frames dynamic."""
    torch.onnx.export(
        network,
        (torch.randn(2, n_mels, 300),),
        str(path),
        input_names=["log_mel"],
        output_names=[output_name],
        dynamic_axes={"log_mel": {0: "batch", 2: "frames"}, output_name: {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )


def max_difference_to_torch(network: torch.nn.Module, onnx_path: Path, n_mels: int = 80) -> float:
    """Largest absolute output difference between a torch ``network`` and an ONNX graph, on random
    log-mels of three lengths (batches of 3)."""
    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    generator = torch.Generator().manual_seed(0)
    worst = 0.0
    for frames in (100, 300, 600):
        log_mel = torch.randn(3, n_mels, frames, generator=generator) * 0.5
        with torch.inference_mode():
            expected = network(log_mel).numpy()
        got = session.run(None, {"log_mel": log_mel.numpy()})[0]
        worst = max(worst, float(np.max(np.abs(got - expected))))
    return worst
