"""Torch emulation of ONNX Runtime's dynamically quantized int8 MatMul: the source model that a
``precision = "int8-matmul"`` detector graph is checked against (within ``INT8_TOLERANCE`` of
``services.detector.models``, not the float graph's 1e-4: rounding flips add up)."""

from __future__ import annotations

import torch


class Int8MatMulEmulation(torch.nn.Module):
    """``x @ weight + bias`` as ONNX Runtime computes it after
    ``services.detector.models.quantize_matmuls``, in torch.

    Weight: symmetric, one scale per tensor, 7-bit range (``reduce_range``): ``w_q = round(w / s_w)``
    in [-64, 64], ``s_w = max|w| / 64``. Input, per call (DynamicQuantizeLinear, over the whole
    tensor): ``s_x = (max(x, 0) - min(x, 0)) / 255``, zero point ``round(-min(x, 0) / s_x)``, ``x_q``
    in [0, 255]. Output: the exact integer product (float64 here) times ``s_x · s_w``, plus bias.
    Rounding is half to even on both sides, as in ONNX.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None = None) -> None:
        """``weight``: (in, out), or (in,) for a product with a vector."""
        super().__init__()
        weight = weight.to(torch.float32)
        self.weight_scale = weight.abs().max() / 64.0
        self.weight_q = torch.clamp(torch.round(weight / self.weight_scale), -64, 64).to(torch.float64)
        self.bias = bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        low = torch.clamp(x.min(), max=0.0)
        high = torch.clamp(x.max(), min=0.0)
        scale = (high - low) / 255.0
        scale = torch.where(scale == 0, torch.ones_like(scale), scale)
        zero_point = torch.clamp(torch.round(-low / scale), 0, 255)
        x_q = torch.clamp(torch.round(x / scale) + zero_point, 0, 255)
        product = ((x_q - zero_point).to(torch.float64) @ self.weight_q).to(torch.float32)
        y = product * (scale * self.weight_scale)
        return y if self.bias is None else y + self.bias
