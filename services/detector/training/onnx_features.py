"""Pooled Whisper-layer features through ONNX Runtime: what :class:`WhisperLayerFeatures` computes,
several times faster on a CPU, for building training features of large datasets.

The torch encoder and pooling are exported once into the cache (checked against torch within
:data:`shared.onnx_export.ONNX_TOLERANCE`); rows are the hidden states 0..``num_layers`` as in the torch extractor.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime
import torch

from services.detector.model_files import Pooling, check_pooling
from services.detector.training.features import pool_statistics
from shared.audio import Audio
from shared.files import write_atomic
from shared.log_mel import WHISPER_MAX_FRAMES, whisper_log_mel
from shared.offline_models import cache_dir, whisper_model_dir
from shared.onnx_export import ONNX_TOLERANCE, export_log_mel_network
from shared.whisper_encoder import WhisperEncoder

#: Bump when the exported graph changes.
GRAPH_VERSION = 1


class _PooledLayers(torch.nn.Module):
    def __init__(self, encoder: WhisperEncoder, pooling: Pooling) -> None:
        super().__init__()
        self.encoder = encoder
        self.pooling = pooling

    def forward(self, log_mel: torch.Tensor) -> torch.Tensor:
        return torch.stack([pool_statistics(layer, self.pooling) for layer in self.encoder(log_mel)], dim=1)


def open_log_mel_graph(
    graph_path: Path, build_network: Callable[[], torch.nn.Module], output_name: str, threads: int, what: str
) -> onnxruntime.InferenceSession:
    """An ONNX Runtime session of a network that reads Whisper's log-mel, exported into the cache
    first if missing (from ``build_network()``, checked against torch within
    :data:`~shared.onnx_export.ONNX_TOLERANCE`, relative to each value's size + 1)."""

    def export_and_check(partial: Path) -> None:
        network = build_network().eval()
        export_log_mel_network(network, partial, output_name)
        session = onnxruntime.InferenceSession(str(partial), providers=["CPUExecutionProvider"])
        for frames in (50, 400):
            log_mel = torch.randn(2, 80, frames) * 0.5
            with torch.inference_mode():
                expected = network(log_mel).numpy()
            got = session.run(None, {"log_mel": log_mel.numpy()})[0]
            worst = float(np.max(np.abs(got - expected) / (np.abs(expected) + 1.0)))
            if worst > ONNX_TOLERANCE:
                raise RuntimeError(f"{what} graph differs from torch by {worst:.2e}")

    if not graph_path.exists():
        write_atomic(graph_path, export_and_check)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(str(graph_path), sess_options=options, providers=["CPUExecutionProvider"])


def run_on_clip(session: onnxruntime.InferenceSession, audio: Audio) -> np.ndarray:
    """The graph's first output for one clip (resampled to 16 kHz, cut to Whisper's 30 s window)."""
    if audio.sample_rate_hz != 16_000:
        audio = audio.resample(16_000)
    log_mel = whisper_log_mel(audio.samples)[None, :, :WHISPER_MAX_FRAMES]
    return session.run(None, {"log_mel": log_mel})[0][0]


class OnnxLayerFeatures:
    """(num_layers + 1, k·width) pooled hidden states of a 16 kHz clip, through ONNX Runtime."""

    def __init__(self, model_name: str = "base", num_layers: int = 4, pooling: Pooling = "mean-std", threads: int = 2):
        self.model_name = model_name
        self.num_layers = num_layers
        self.pooling = check_pooling(pooling)
        model_bin = whisper_model_dir(model_name) / "model.bin"
        digest = hashlib.sha256(
            f"{model_name}-{num_layers}-{pooling}-{GRAPH_VERSION}-{model_bin.stat().st_size}".encode()
        )
        self.graph_path = cache_dir() / "features" / f"whisper-layers-{digest.hexdigest()[:16]}.onnx"
        self.session = open_log_mel_graph(self.graph_path, self._network, "pooled", threads, "pooled-layer")

    @property
    def cache_id(self) -> str:
        return f"whisper-{self.model_name}-h0-l{self.num_layers}-{self.pooling.replace('-', '')}-onnx{GRAPH_VERSION}"

    def _network(self) -> torch.nn.Module:
        encoder = WhisperEncoder.from_ct2(whisper_model_dir(self.model_name), num_layers=self.num_layers)
        return _PooledLayers(encoder, self.pooling)

    def __call__(self, audio: Audio) -> np.ndarray:
        return run_on_clip(self.session, audio)
