"""A faster Kokoro graph: the vocoder's big convolutions statically quantized to int8.

The packaged Kokoro-82M graph is dynamically quantized (``ConvInteger``, which ONNX Runtime runs
slowly). Recipe, deterministic for a given packaged model:

1. every ``ConvInteger`` chain (``DynamicQuantizeLinear`` → ``ConvInteger`` [→ integer bias add]
   → ``Cast`` → ``Mul`` by the scales) becomes one float ``Conv`` with the dequantized weight and
   the float bias;
2. the generator's blocks in :data:`STATIC_PREFIXES` are quantized statically (QDQ, uint8
   activations, per-channel int8 weights in a 7-bit range), their activation ranges calibrated
   (min/max) on fixed sentences spoken with the five style packs and with random styles drawn as
   widely as the cloner's style bank draws them.

The result is cached (``VCFAD_CACHE_DIR``); :func:`shared.tts.kokoro.fast_kokoro_model_path`
builds it once under a file lock. Why these blocks, the profile and the measurements:
docs/cloning.md, "Kokoro's fast graph".
"""

from __future__ import annotations

import collections
import fcntl
import hashlib
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from shared.tts.kokoro_styles import model_feed, stacked_packs, style_spread

logger = logging.getLogger(__name__)

#: Bump when the recipe changes: the cached file's name carries it. 2: 7-bit weights (reduce_range).
RECIPE_VERSION = 2
_GENERATOR = "/decoder/decoder/generator/"
#: Convolutions quantized statically: the generator's 256-channel residual blocks (at 800 frames per
#: second) and both noise-branch blocks (noise_res.1 runs at the output rate and stays transparent).
#: The 128-channel residual blocks at the output rate (resblocks 3–5) stay float: with them
#: quantized too (``bench/kokoro_graphs.py --all-generator``) the graph ran 22 % faster but added
#: 1.5 dB of 4–12 kHz energy (8-bit activation error) and moved the voice (GE2E 0.952 to float).
STATIC_PREFIXES = (
    f"{_GENERATOR}resblocks.0/",
    f"{_GENERATOR}resblocks.1/",
    f"{_GENERATOR}resblocks.2/",
    f"{_GENERATOR}noise_res.",
)
CALIBRATION_SENTENCES = (
    "The old lighthouse keeper climbed the stairs every evening to light the lamp.",
    "Please call Stella and ask her to bring these things with her from the store.",
    "Nobody spoke until we reached the harbour, where a small boat was waiting!",
    "Is it true that twenty-seven people were there on Monday morning?",
    "Yes.",
    "She sells sea shells by the sea shore, quietly, while humming a tune.",
)
#: Random calibration styles beside the five packs (each speaks one sentence).
RANDOM_STYLES = 12
CALIBRATION_SEED = 2026


def dequantize_convolutions(model):  # onnx.ModelProto → onnx.ModelProto (onnx imported lazily)
    """Replace every dynamically quantized convolution chain by a float ``Conv`` (in place).

    Parameters
    ----------
    model
        The packaged Kokoro graph (``onnx.ModelProto``), loaded with its weights.

    Returns
    -------
    onnx.ModelProto
        The same object, with dead nodes and initializers removed.
    """
    from onnx import helper, numpy_helper  # onnx loads only when a graph is rebuilt (once, then cached)

    graph = model.graph
    initializers = {init.name: init for init in graph.initializer}
    producer = {out: node for node in graph.node for out in node.output}
    consumers: dict[str, list] = collections.defaultdict(list)
    for node in graph.node:
        for name in node.input:
            consumers[name].append(node)

    def array(name: str) -> np.ndarray:
        return numpy_helper.to_array(initializers[name])

    def only_consumer(name: str, op_type: str):
        found = consumers[name]
        if len(found) != 1 or found[0].op_type != op_type:
            raise ValueError(f"unexpected Kokoro graph: {name} feeds {[n.op_type for n in found]}, not one {op_type}")
        return found[0]

    replaced: dict[int, object] = {}  # id(final Mul) → new Conv
    dropped: set[int] = set()
    new_initializers = []
    for node in graph.node:
        if node.op_type != "ConvInteger":
            continue
        quantize = producer[node.input[0]]
        if quantize.op_type != "DynamicQuantizeLinear":
            raise ValueError(f"unexpected Kokoro graph: {node.name} input comes from {quantize.op_type}")
        scale = array(node.input[1].removesuffix("_quantized") + "_scale").astype(np.float32)
        zero_point = array(node.input[3]).astype(np.float32)
        if scale.size != 1 or zero_point.size != 1:
            raise ValueError(f"unexpected Kokoro graph: {node.name} has per-channel weight scales")
        weight = (array(node.input[1]).astype(np.float32) - zero_point) * scale
        chain = [node]
        bias = None
        after = consumers[node.output[0]]
        if len(after) == 1 and after[0].op_type == "Add":  # integer bias: Div → Floor → Cast → Reshape
            add = after[0]
            chain.append(add)
            step = producer.get(next(name for name in add.input if name != node.output[0]))
            for op_type in ("Reshape", "Cast", "Floor", "Div"):
                if step is None or step.op_type != op_type:
                    raise ValueError(f"unexpected Kokoro graph: bias of {node.name} is not a scaled initializer")
                if op_type != "Div":
                    step = producer.get(step.input[0])
            assert step is not None  # the loop ends on the Div it checked
            if step.input[0] not in initializers:
                raise ValueError(f"unexpected Kokoro graph: bias of {node.name} is not an initializer")
            bias = array(step.input[0]).astype(np.float32)
            cast = only_consumer(add.output[0], "Cast")
        else:
            cast = only_consumer(node.output[0], "Cast")
        rescale = only_consumer(cast.output[0], "Mul")
        chain += [cast, rescale]
        base = node.name.removesuffix("_quant")
        inputs = [quantize.input[0], f"{base}.weight_float"]
        new_initializers.append(numpy_helper.from_array(weight, inputs[1]))
        if bias is not None:
            inputs.append(f"{base}.bias_float")
            new_initializers.append(numpy_helper.from_array(bias, inputs[2]))
        conv = helper.make_node("Conv", inputs, [rescale.output[0]], name=base)
        conv.attribute.extend(node.attribute)
        replaced[id(rescale)] = conv
        dropped.update(id(n) for n in chain)

    nodes = [replaced.get(id(node), node) for node in graph.node if id(node) not in dropped or id(node) in replaced]
    graph.ClearField("node")
    graph.node.extend(nodes)
    graph.initializer.extend(new_initializers)
    _prune(graph)
    return model


def _prune(graph) -> None:
    """Drop nodes whose outputs nobody reads, then initializers nobody reads."""
    outputs = {out.name for out in graph.output}
    while True:
        read = {name for node in graph.node for name in node.input} | outputs
        alive = [node for node in graph.node if any(out in read for out in node.output)]
        if len(alive) == len(graph.node):
            break
        graph.ClearField("node")
        graph.node.extend(alive)
    read = {name for node in graph.node for name in node.input}
    kept = [init for init in graph.initializer if init.name in read]
    graph.ClearField("initializer")
    graph.initializer.extend(kept)


def calibration_feeds(
    packs: dict[str, np.ndarray], tokenize: Callable[[str], list[int]]
) -> list[dict[str, np.ndarray]]:
    """Model inputs for range calibration: every sentence with every pack, plus random styles.

    ``tokenize`` maps an English sentence to token ids; ``packs`` are the (510, 256) style packs.
    """
    stacked = stacked_packs(packs)
    spread = style_spread(stacked)
    rng = np.random.default_rng(CALIBRATION_SEED)
    tables = [stacked[i] for i in range(len(stacked))]
    for _ in range(RANDOM_STYLES):
        mix = rng.dirichlet(np.full(len(stacked), 0.6))
        offset = rng.normal(0.0, 1.0, spread.shape) * spread * rng.uniform(0.0, 2.2)
        tables.append(np.tensordot(mix, stacked, axes=1) + offset)
    tokenized = [tokenize(sentence) for sentence in CALIBRATION_SENTENCES]
    feeds: list[dict[str, np.ndarray]] = []
    for index, table in enumerate(tables):
        # packs speak every sentence; each random style speaks one (cycling), which keeps it short
        chosen = tokenized if index < len(stacked) else [tokenized[index % len(tokenized)]]
        feeds.extend(model_feed(tokens, table) for tokens in chosen)
    return feeds


def build_fast_model(
    source: Path, out: Path, feeds: list[dict[str, np.ndarray]], prefixes: tuple[str, ...] = STATIC_PREFIXES
) -> Path:
    """Write the statically quantized graph of ``source`` to ``out`` (see the module docstring)."""
    # onnx and the quantizer load only when the graph is built (once, then cached).
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class _Feeds(CalibrationDataReader):
        def __init__(self) -> None:
            self._iterator: Iterator[dict[str, np.ndarray]] = iter(feeds)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._iterator, None)

    model = dequantize_convolutions(onnx.load(str(source)))
    static = [node.name for node in model.graph.node if node.op_type == "Conv" and node.name.startswith(prefixes)]
    if not static:
        raise ValueError("unexpected Kokoro graph: no generator residual-block convolutions found")
    out.parent.mkdir(parents=True, exist_ok=True)
    float_path = out.with_name(out.name + ".float.onnx")
    partial = out.with_name(out.name + ".partial")
    try:
        onnx.save(model, str(float_path))
        quantize_static(
            str(float_path),
            str(partial),
            _Feeds(),
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=["Conv"],
            nodes_to_quantize=static,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
            # 7-bit weights: on x86 CPUs without VNNI (AVX2, e.g. the AMD EPYC CI drew on
            # 2026-11-27) ONNX Runtime's uint8×int8 kernel adds pairs of products in int16, which
            # saturates with full-range weights (a tiny graph came out 14 % off; 7-bit: within 5 %).
            reduce_range=True,
            calibrate_method=CalibrationMethod.MinMax,
        )
        with partial.open("rb+") as handle:  # on disk before the rename: a crash leaves no half file
            os.fsync(handle.fileno())
        partial.replace(out)  # atomic: a concurrent reader never sees half a file
    finally:
        float_path.unlink(missing_ok=True)
        partial.unlink(missing_ok=True)
    logger.info("Kokoro: %d generator convolutions quantized statically → %s", len(static), out)
    return out


def fingerprint(source: Path, extra_files: tuple[Path, ...] = ()) -> str:
    """What the cached graph depends on: the packaged graph (its first and last 8 MB and its size),
    the other inputs of the calibration (``extra_files``: the package's published sha256 of the
    graph, the style packs), the recipe and the onnxruntime version that quantized it."""
    import onnxruntime  # loaded on use: shared.tts.kokoro imports this module for the voice's path

    digest = hashlib.sha256()
    size = source.stat().st_size
    digest.update(str(size).encode())
    with source.open("rb") as handle:
        digest.update(handle.read(8 << 20))
        handle.seek(max(0, size - (8 << 20)))
        digest.update(handle.read())
    for path in extra_files:
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    recipe = (RECIPE_VERSION, STATIC_PREFIXES, CALIBRATION_SENTENCES, RANDOM_STYLES, CALIBRATION_SEED)
    digest.update(repr(recipe).encode())
    digest.update(onnxruntime.__version__.encode())
    return digest.hexdigest()[:16]


def cached_fast_model(
    source: Path,
    cache: Path,
    make_feeds: Callable[[], list[dict[str, np.ndarray]]],
    extra_files: tuple[Path, ...] = (),
) -> Path:
    """The cached fast graph for ``source``, built once under a lock (``make_feeds()`` → feeds)."""
    out = cache / f"kokoro-static-int8-{fingerprint(source, extra_files)}.onnx"
    if out.exists():
        return out
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / "kokoro-static-int8.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second process waits here, then finds the file
        if not out.exists():
            logger.warning("Kokoro: building the statically quantized graph once (1–2 min) → %s", out)
            build_fast_model(source, out, make_feeds())
    return out
