"""The ``whisper-probe`` and ``whisper-frames`` models as one torch network each (log-mel →
P(fake)), their ONNX export and the check of a graph against the network it came from."""

from __future__ import annotations

from pathlib import Path

import torch

from services.detector.model_files import ModelSpec, Precision, ProbeHead
from services.detector.training.features import normalise_channel, pool_statistics
from services.detector.training.frames import FrameHead, FramesNetwork
from services.detector.training.int8 import Int8MatMulEmulation
from shared.files import write_atomic
from shared.offline_models import whisper_model_dir
from shared.onnx_export import ONNX_TOLERANCE, export_log_mel_network, max_difference_to_torch
from shared.whisper_encoder import WhisperEncoder


def build_probe_network(head: ProbeHead, whisper_model: str = "base", precision: Precision = "float32"):
    """The whole ``whisper-probe`` model as one torch module: log-mel (batch, 80, frames) -> P(fake).

    With an int8 ``precision`` every weight product computes what ONNX Runtime computes for the
    graph :func:`~services.detector.training.int8.quantize_matmuls` writes (per output channel for
    ``int8-matmul-channel``, whose head product stays float as in that graph): the source model
    that the int8 graph is checked against. Only the float network is exported.
    """

    class ProbeNetwork(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = WhisperEncoder.from_ct2(whisper_model_dir(whisper_model), num_layers=max(head.layers))
            self.layer_indices = list(head.layers)
            self.register_buffer("mean", torch.from_numpy(head.mean))
            self.register_buffer("scale", torch.from_numpy(head.scale))
            self.register_buffer("coef", torch.from_numpy(head.coef))
            self.intercept = float(head.intercept)
            profile = None if head.mel_profile is None else torch.from_numpy(head.mel_profile)
            self.register_buffer("mel_profile", profile)
            self.head_product = None  # float: `@ coef`, as the exported graph has it

        def forward(self, log_mel: torch.Tensor) -> torch.Tensor:
            if self.mel_profile is not None:
                log_mel = normalise_channel(log_mel, self.mel_profile)
            hidden = self.encoder(log_mel)
            pooled = torch.cat([pool_statistics(hidden[index], head.pooling) for index in self.layer_indices], dim=-1)
            standardised = (pooled - self.mean) / self.scale
            if self.head_product is None:
                logits = standardised @ self.coef + self.intercept
            else:
                logits = self.head_product(standardised) + self.intercept
            return torch.sigmoid(logits)

    network = ProbeNetwork().eval()
    if precision != "float32":
        per_channel = precision == "int8-matmul-channel"
        for block in network.encoder.blocks:
            for name in ("qkv", "out", "ffn_in", "ffn_out"):
                linear = getattr(block, name)
                emulation = Int8MatMulEmulation(linear.weight.detach().T, linear.bias.detach(), per_channel=per_channel)
                setattr(block, name, emulation)
        if not per_channel:
            network.head_product = Int8MatMulEmulation(network.coef)
    return network


def build_network(model_dir: Path) -> torch.nn.Module:
    """The float torch network of a ``whisper-probe`` or ``whisper-frames`` model folder."""
    spec = ModelSpec.read(model_dir)
    head_path = Path(model_dir) / "head.npz"
    if spec.kind == "whisper-frames":
        return FramesNetwork(FrameHead.load(head_path), spec.whisper_model).eval()
    return build_probe_network(ProbeHead.load(head_path), spec.whisper_model)


def export_probe_onnx(model_dir: Path, target: Path) -> float:
    """Export a model folder's network (:func:`build_network`) to ONNX and check it against torch;
    returns the max difference."""
    network = build_network(model_dir)
    worst = 0.0

    def export_and_check(partial: Path) -> None:
        nonlocal worst
        export_log_mel_network(network, partial, "probability")
        worst = max_difference_to_torch(network, partial)
        if worst > ONNX_TOLERANCE:
            raise RuntimeError(f"ONNX export of {model_dir} differs from torch by {worst:.2e} > {ONNX_TOLERANCE}")

    # The service, the CLI and a Celery worker may assemble the graph on first use at once.
    write_atomic(target, export_and_check)
    return worst
