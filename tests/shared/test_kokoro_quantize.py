"""shared.tts.kokoro_quantize: the dequantize → static-int8 rewrite, on a tiny graph and on Kokoro."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from shared.tts.kokoro_quantize import STATIC_PREFIXES, build_fast_model, dequantize_convolutions  # noqa: E402

_GENERATOR = "/decoder/decoder/generator/"


def _run(path: Path, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


@pytest.fixture(scope="module")
def tiny_float_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray, np.ndarray]:
    """Two 1-D convolutions named like Kokoro's generator blocks (one with a bias), plus their
    float weights, saved as an ONNX file."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w1 = rng.normal(0, 0.3, (8, 4, 5)).astype(np.float32)
    b1 = rng.normal(0, 0.1, 8).astype(np.float32)
    w2 = rng.normal(0, 0.3, (4, 8, 3)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["x", "w1", "b1"], ["h"], name=f"{_GENERATOR}resblocks.0/c1", pads=[2, 2]),
            helper.make_node("LeakyRelu", ["h"], ["a"], alpha=0.1),
            helper.make_node("Conv", ["a", "w2"], ["y"], name=f"{_GENERATOR}resblocks.4/c2", pads=[1, 1]),
        ],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, None])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, None])],
        [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(b1, "b1"), numpy_helper.from_array(w2, "w2")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path_factory.mktemp("tiny") / "float.onnx"
    onnx.save(model, str(path))
    x = rng.normal(0, 1, (1, 4, 400)).astype(np.float32)
    return path, x, _run(path, x)


def test_dequantize_turns_dynamic_int8_convolutions_back_into_float(tiny_float_model, tmp_path: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    float_path, x, expected = tiny_float_model
    dynamic = tmp_path / "dynamic.onnx"
    quantize_dynamic(str(float_path), str(dynamic), weight_type=QuantType.QUInt8, op_types_to_quantize=["Conv"])
    assert any(node.op_type == "ConvInteger" for node in onnx.load(str(dynamic)).graph.node)

    rewritten = dequantize_convolutions(onnx.load(str(dynamic)))
    ops = [node.op_type for node in rewritten.graph.node]
    assert "ConvInteger" not in ops and "DynamicQuantizeLinear" not in ops and ops.count("Conv") == 2
    path = tmp_path / "rewritten.onnx"
    onnx.save(rewritten, str(path))
    got = _run(path, x)
    # Only the 8-bit weight rounding is left: far closer to the float graph than the dynamic one.
    error = np.abs(got - expected).max() / np.abs(expected).max()
    dynamic_error = np.abs(_run(dynamic, x) - expected).max() / np.abs(expected).max()
    assert error < 0.03 and error < dynamic_error, (error, dynamic_error)


def test_dequantize_folds_kokoros_integer_bias_chain(tmp_path: Path) -> None:
    """Kokoro's own pattern (80 of its 87 convolutions): the bias is quantized on the fly with the
    dynamic scale (Div → Floor → Cast → Reshape) and added in int32 before the Cast and rescale."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(2)
    weight = rng.normal(0, 0.3, (6, 3, 5)).astype(np.float32)
    bias = rng.normal(0, 0.2, 6).astype(np.float32)
    weight_scale = np.float32(np.abs(weight).max() / 127)
    weight_q = (np.round(weight / weight_scale) + 128).astype(np.uint8)
    initializers = [
        numpy_helper.from_array(weight_q, "c/W_quantized"),
        numpy_helper.from_array(np.array(weight_scale, np.float32), "c/W_scale"),
        numpy_helper.from_array(np.array(128, np.uint8), "c/W_zero_point"),
        numpy_helper.from_array(bias, "c.bias"),
        numpy_helper.from_array(np.array([1, 6, 1], np.int64), "bias_shape"),
    ]
    nodes = [
        helper.make_node("DynamicQuantizeLinear", ["x"], ["xq", "xs", "xz"]),
        helper.make_node("Mul", ["xs", "c/W_scale"], ["bias_scale"]),
        helper.make_node("Div", ["c.bias", "bias_scale"], ["bias_div"]),
        helper.make_node("Floor", ["bias_div"], ["bias_floor"]),
        helper.make_node("Cast", ["bias_floor"], ["bias_int"], to=TensorProto.INT32),
        helper.make_node("Reshape", ["bias_int", "bias_shape"], ["bias_r"]),
        helper.make_node(
            "ConvInteger", ["xq", "c/W_quantized", "xz", "c/W_zero_point"], ["y_int"], name="c_quant", pads=[2, 2]
        ),
        helper.make_node("Add", ["y_int", "bias_r"], ["y_bias"]),
        helper.make_node("Cast", ["y_bias"], ["y_float"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["y_float", "bias_scale"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "kokoro-like",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, None])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 6, None])],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    dynamic = tmp_path / "dynamic.onnx"
    onnx.save(model, str(dynamic))
    x = rng.normal(0, 1, (1, 3, 200)).astype(np.float32)

    rewritten = dequantize_convolutions(onnx.load(str(dynamic)))
    assert [node.op_type for node in rewritten.graph.node] == ["Conv"]
    assert len(rewritten.graph.node[0].input) == 3  # the float bias is folded into the Conv
    path = tmp_path / "rewritten.onnx"
    onnx.save(rewritten, str(path))
    # Exactly a float Conv with the dequantized weight and the float bias.
    dequantized = (weight_q.astype(np.float32) - 128) * weight_scale
    padded = np.pad(x[0], ((0, 0), (2, 2)))
    expected = np.stack(
        [sum(np.convolve(padded[c], dequantized[o, c][::-1], "valid") for c in range(3)) + bias[o] for o in range(6)]
    )[None]
    np.testing.assert_allclose(_run(path, x), expected, atol=1e-4)
    # …and within the dynamic graph's activation rounding of the original.
    assert np.abs(_run(dynamic, x) - expected).max() < 0.05 * np.abs(expected).max()


def test_build_quantizes_only_the_chosen_blocks(tiny_float_model, tmp_path: Path) -> None:
    float_path, x, expected = tiny_float_model
    rng = np.random.default_rng(1)
    feeds = [{"x": rng.normal(0, 1, (1, 4, 300)).astype(np.float32)} for _ in range(4)]
    out = build_fast_model(float_path, tmp_path / "fast.onnx", feeds)
    model = onnx.load(str(out))
    assert not list(tmp_path.glob("*.partial")) and not list(tmp_path.glob("*.float.onnx"))
    dequantized_weights = {
        node.output[0] for node in model.graph.node if node.op_type == "DequantizeLinear" and "w" in node.input[0]
    }
    convs = {node.name: node for node in model.graph.node if node.op_type == "Conv"}
    quantized = {name for name, node in convs.items() if node.input[1] in dequantized_weights}
    assert quantized == {name for name in convs if name.startswith(STATIC_PREFIXES)} == {f"{_GENERATOR}resblocks.0/c1"}
    got = _run(out, x)
    assert np.abs(got - expected).max() / np.abs(expected).max() < 0.05


@pytest.mark.slow
def test_fast_kokoro_graph_keeps_the_voice_and_the_words() -> None:
    """The shipped recipe on the real Kokoro graph: same duration, same voice (GE2E), same words."""
    from shared.asr import SpeechRecognizer, word_error_rate
    from shared.speaker import SpeakerEncoder
    from shared.tts.kokoro import KokoroTTS

    text = "The committee will announce its decision after the meeting next Thursday."
    style = {"jf_alpha": 0.4, "jm_kumo": 0.6}
    fast = KokoroTTS(style, threads=2, graph="fast").synthesize(text)
    packaged = KokoroTTS(style, threads=2, graph="packaged").synthesize(text)
    assert abs(fast.duration_s - packaged.duration_s) < 0.1
    similarity = SpeakerEncoder(threads=2).similarity(fast, packaged)
    assert similarity > 0.97, similarity
    assert word_error_rate(text, SpeechRecognizer("base", threads=2).transcribe(fast)) <= 0.1
    with pytest.raises(ValueError, match="unknown Kokoro graph"):
        KokoroTTS(graph="fp16")  # type: ignore[arg-type]
