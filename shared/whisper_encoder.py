"""Whisper's audio encoder in PyTorch, with weights read from an offline CTranslate2 model.

The detector uses intermediate layers of Whisper-base's encoder as features. The only offline
Whisper weights here are CTranslate2 conversions (see :mod:`shared.offline_models`), which
CTranslate2 itself runs only as a whole, on 30-second windows, returning the last layer. This
module reads the ``model.bin`` variables directly and rebuilds the encoder in PyTorch so it can
run on the true window length, return any layer, and be exported to ONNX with a classifier head.
Its input is the log-mel front end of :mod:`shared.log_mel` (numpy, shared with serving).
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

# CTranslate2 DataType enum values -> numpy dtypes.
_CT2_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}


def read_ct2_variables(model_bin: Path, prefix: str = "") -> dict[str, np.ndarray]:
    """Variables of a CTranslate2 ``model.bin`` (binary version ≥ 5) whose names start with ``prefix``."""
    variables: dict[str, np.ndarray] = {}
    with Path(model_bin).open("rb") as stream:

        def read(fmt: str) -> tuple:
            return struct.unpack("<" + fmt, stream.read(struct.calcsize("<" + fmt)))

        def read_string() -> str:
            (length,) = read("H")
            return stream.read(length).rstrip(b"\0").decode()

        (version,) = read("I")
        if version < 5:
            raise ValueError(f"{model_bin}: CTranslate2 binary version {version} is not supported (need ≥ 5)")
        read_string()  # spec name
        read("I")  # spec revision
        (count,) = read("I")
        for _ in range(count):
            name = read_string()
            (rank,) = read("B")
            shape = read("I" * rank) if rank else ()
            (dtype_id,) = read("B")
            (num_bytes,) = read("I")
            if not name.startswith(prefix):
                stream.seek(num_bytes, 1)
                continue
            data = np.frombuffer(stream.read(num_bytes), dtype=_CT2_DTYPES[dtype_id])
            variables[name] = data.reshape(shape).astype(np.float32) if rank else data.astype(np.float32)
    return variables


@dataclass(frozen=True)
class WhisperEncoderConfig:
    n_mels: int = 80
    width: int = 512
    heads: int = 8
    layers: int = 6
    max_positions: int = 1500


class _Block(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.attn_norm = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)
        self.ffn_norm = nn.LayerNorm(width)
        self.ffn_in = nn.Linear(width, 4 * width)
        self.ffn_out = nn.Linear(4 * width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, time, width = x.shape
        q, k, v = self.qkv(self.attn_norm(x)).split(width, dim=-1)
        shape = (batch, time, self.heads, width // self.heads)
        q, k, v = (t.reshape(shape).transpose(1, 2) for t in (q, k, v))
        attended = torch.nn.functional.scaled_dot_product_attention(q, k, v)
        x = x + self.out(attended.transpose(1, 2).reshape(batch, time, width))
        return x + self.ffn_out(torch.nn.functional.gelu(self.ffn_in(self.ffn_norm(x))))


class WhisperEncoder(nn.Module):
    """Whisper's encoder that returns its hidden states: the front end's and each block's.

    ``forward(log_mel)`` takes (batch, n_mels, frames) and returns a list of ``num_layers + 1``
    tensors of shape (batch, frames // 2, width): element 0 is the convolutional front end's
    output with the positional embedding (the first block's input), element *i* the output of
    block *i*; the model's last block has Whisper's final layer norm applied. ``num_layers = 0``
    runs the front end only.
    """

    positions: torch.Tensor  # a registered buffer, typed for the checker

    def __init__(self, config: WhisperEncoderConfig, num_layers: int | None = None) -> None:
        super().__init__()
        self.config = config
        self.num_layers = config.layers if num_layers is None else num_layers
        if not 0 <= self.num_layers <= config.layers:
            raise ValueError(f"num_layers must be in 0..{config.layers}, got {num_layers}")
        self.conv1 = nn.Conv1d(config.n_mels, config.width, kernel_size=3, padding=1)
        self.conv2 = nn.Conv1d(config.width, config.width, kernel_size=3, stride=2, padding=1)
        self.register_buffer("positions", torch.zeros(config.max_positions, config.width))
        self.blocks = nn.ModuleList(_Block(config.width, config.heads) for _ in range(self.num_layers))
        self.final_norm = nn.LayerNorm(config.width)

    def forward(self, log_mel: torch.Tensor) -> list[torch.Tensor]:
        x = torch.nn.functional.gelu(self.conv1(log_mel))
        x = torch.nn.functional.gelu(self.conv2(x)).transpose(1, 2)
        x = x + self.positions[: x.shape[1]]
        hidden = [x]
        for index, block in enumerate(self.blocks):
            x = block(x)
            is_last_of_model = index == self.config.layers - 1
            hidden.append(self.final_norm(x) if is_last_of_model else x)
        return hidden

    @classmethod
    def from_ct2(cls, model_dir: Path, num_layers: int | None = None) -> WhisperEncoder:
        """Build the encoder (optionally only its first ``num_layers`` blocks) from a CT2 Whisper folder."""
        model_dir = Path(model_dir)
        weights = read_ct2_variables(model_dir / "model.bin", prefix="encoder/")
        width = weights["encoder/conv1/weight"].shape[0]
        layers = 1 + max(int(match[1]) for name in weights if (match := re.match(r"encoder/layer_(\d+)/", name)))
        heads = int(weights["encoder/num_heads"].reshape(-1)[0]) if "encoder/num_heads" in weights else width // 64
        config = WhisperEncoderConfig(
            n_mels=weights["encoder/conv1/weight"].shape[1],
            width=width,
            heads=heads,
            layers=layers,
            max_positions=weights["encoder/position_encodings/encodings"].shape[0],
        )
        encoder = cls(config, num_layers)
        state = {
            "conv1.weight": "encoder/conv1/weight",
            "conv1.bias": "encoder/conv1/bias",
            "conv2.weight": "encoder/conv2/weight",
            "conv2.bias": "encoder/conv2/bias",
            "positions": "encoder/position_encodings/encodings",
            "final_norm.weight": "encoder/layer_norm/gamma",
            "final_norm.bias": "encoder/layer_norm/beta",
        }
        for index in range(encoder.num_layers):
            source, target = f"encoder/layer_{index}", f"blocks.{index}"
            state |= {
                f"{target}.attn_norm.weight": f"{source}/self_attention/layer_norm/gamma",
                f"{target}.attn_norm.bias": f"{source}/self_attention/layer_norm/beta",
                f"{target}.qkv.weight": f"{source}/self_attention/linear_0/weight",
                f"{target}.qkv.bias": f"{source}/self_attention/linear_0/bias",
                f"{target}.out.weight": f"{source}/self_attention/linear_1/weight",
                f"{target}.out.bias": f"{source}/self_attention/linear_1/bias",
                f"{target}.ffn_norm.weight": f"{source}/ffn/layer_norm/gamma",
                f"{target}.ffn_norm.bias": f"{source}/ffn/layer_norm/beta",
                f"{target}.ffn_in.weight": f"{source}/ffn/linear_0/weight",
                f"{target}.ffn_in.bias": f"{source}/ffn/linear_0/bias",
                f"{target}.ffn_out.weight": f"{source}/ffn/linear_1/weight",
                f"{target}.ffn_out.bias": f"{source}/ffn/linear_1/bias",
            }
        encoder.load_state_dict({key: torch.from_numpy(weights[name]) for key, name in state.items()})
        return encoder.eval()
