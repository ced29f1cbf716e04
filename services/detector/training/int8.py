"""The int8 precisions (``int8-matmul``, ``int8-matmul-channel``): the dynamic int8
quantization of a graph's MatMuls (:func:`quantize_matmuls`) and its torch emulation
(:class:`Int8MatMulEmulation`), the source model that an int8 graph is checked against."""

from __future__ import annotations

from pathlib import Path

import onnx
import torch
from onnxruntime.quantization import QuantType, quantize_dynamic

#: How close an int8 graph must come to its torch emulation. Not the float graph's 1e-4: a float
#: difference of one ulp upstream can move an input across a rounding step, and the flips add up
#: (the float and int8 graphs differ by up to ~0.1 on real speech). Was 5e-3 until a CI machine
#: gave 5.1e-3 on a 1 s clip (few frames to average the flips out): the gap depends on the CPU.
INT8_TOLERANCE = 1e-2


class Int8MatMulEmulation(torch.nn.Module):
    """``x @ weight + bias`` as ONNX Runtime computes it after
    :func:`quantize_matmuls`, in torch.

    Weight: symmetric, 7-bit range (``reduce_range``): ``w_q = round(w / s_w)`` in [-64, 64],
    ``s_w = max|w| / 64`` over the whole tensor, or over each output column with ``per_channel``.
    Input, per call (DynamicQuantizeLinear, over the whole
    tensor): ``s_x = (max(x, 0) - min(x, 0)) / 255``, zero point ``round(-min(x, 0) / s_x)``, ``x_q``
    in [0, 255]. Output: the exact integer product (float64 here) times ``s_x · s_w``, plus bias.
    Rounding is half to even on both sides, as in ONNX.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None = None, *, per_channel: bool = False) -> None:
        """``weight``: (in, out), or (in,) for a product with a vector (one scale then: a vector
        has one output channel)."""
        super().__init__()
        weight = weight.to(torch.float32)
        if per_channel and weight.dim() == 2:
            self.weight_scale = weight.abs().amax(dim=0) / 64.0
        else:
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


def quantize_matmuls(float_path: Path, target: Path, *, per_channel: bool = False) -> None:
    """Write ``float_path``'s graph with every MatMul quantized dynamically to int8.

    Weights are 7-bit (``reduce_range``), one scale per tensor: without VNNI, ONNX Runtime's u8×s8
    kernel adds pairs of products in int16, which full-range weights can overflow. Activations are
    quantized per call from their own range. Scores move (a few hundredths on real clips), so an
    int8 model gets its own threshold and goes through the rule in docs/detector.md.

    ``per_channel`` (the ``int8-matmul-channel`` precision): one weight scale per output channel,
    which keeps the small columns of a weight from being rounded away by its largest one; a
    MatMul whose weight is a vector (the head's product with its logistic coefficients) then
    stays float, as ONNX Runtime's dynamic MatMul refuses a per-channel zero point there.
    """
    quantize_dynamic(
        str(float_path),
        str(target),
        op_types_to_quantize=["MatMul"],
        weight_type=QuantType.QInt8,
        per_channel=per_channel,
        reduce_range=True,
        nodes_to_exclude=_vector_weight_matmuls(float_path) if per_channel else [],
    )


def _vector_weight_matmuls(graph_path: Path) -> list[str]:
    """Names of the MatMul nodes of a graph whose weight (an initializer) has one dimension."""
    model = onnx.load(str(graph_path))
    vectors = {init.name for init in model.graph.initializer if len(init.dims) == 1}
    return [node.name for node in model.graph.node if node.op_type == "MatMul" and vectors & set(node.input)]
