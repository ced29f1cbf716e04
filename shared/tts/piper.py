"""Piper (VITS) text-to-speech with the offline ``en_US-joe-medium`` voice.

VITS draws Gaussian noise twice per sentence (duration predictor and prior). In the packaged
graph those are ``RandomNormalLike`` nodes, whose ONNX Runtime kernels seed themselves once per
session: a clip then depends on every call made before it in the process, so the same request
gives other audio in another process. :func:`seeded_noise_graph` turns each such node into a
graph input fed from numpy, and :meth:`PiperTTS.synthesize` takes a ``seed``.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from shared.audio import Audio, Hertz
from shared.offline_models import piper_joe_voice
from shared.tts import TextToSpeechError, check_text

if TYPE_CHECKING:
    import onnxruntime

#: Noise values fed per phoneme at first (grown on demand): ample for 192 channels × ~30 frames.
_NOISE_PER_PHONEME = 192 * 32


def seeded_noise_graph(model_path: Path) -> tuple[bytes, list[str]]:
    """The voice's graph with every ``RandomNormalLike`` node replaced by a graph input.

    Each replaced node reads the first ``size(x)`` values of a 1-D float input (``noise_<k>``),
    reshaped to ``x``'s shape, where the node drew N(0, 1) noise shaped like ``x``. Returns the
    serialized graph and the new inputs' names, in node order.
    """
    # onnx loads only when a voice is built.
    import onnx
    from onnx import TensorProto, helper

    model = onnx.load(str(model_path))
    graph = model.graph
    nodes: list[onnx.NodeProto] = []
    names: list[str] = []
    for node in graph.node:
        if node.op_type != "RandomNormalLike":
            nodes.append(node)
            continue
        attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if attributes.get("mean", 0.0) != 0.0 or attributes.get("scale", 1.0) != 1.0:
            raise ValueError(f"{model_path}: {node.name} is not standard normal noise ({attributes})")
        if attributes.get("dtype", TensorProto.FLOAT) != TensorProto.FLOAT:
            raise ValueError(f"{model_path}: {node.name} draws {attributes['dtype']}, not float32 noise")
        name = f"noise_{len(names)}"
        names.append(name)
        graph.input.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [f"{name}_values"]))
        shape, count, zero, flat = (f"{name}_{part}" for part in ("shape", "count", "zero", "flat"))
        nodes += [
            helper.make_node("Shape", [node.input[0]], [shape], name=shape),
            helper.make_node("ReduceProd", [shape], [count], name=count, keepdims=1),
            helper.make_node(
                "Constant", [], [zero], name=zero, value=helper.make_tensor(zero, TensorProto.INT64, [1], [0])
            ),
            helper.make_node("Slice", [name, zero, count], [flat], name=flat),
            # Named, so that too little noise is told apart from any other failure (see run()).
            helper.make_node("Reshape", [flat, shape], [node.output[0]], name=f"{name}_reshape"),
        ]
    del graph.node[:]
    graph.node.extend(nodes)
    return model.SerializeToString(), names


class _NoiseFeedingSession:
    """An ONNX Runtime session of :func:`seeded_noise_graph` that feeds the noise inputs.

    The noise source is per thread (set by :meth:`start` for one synthesis): it maps ``(call,
    input index, count)`` to ``count`` standard-normal values. PiperVoice calls :meth:`run` once
    per sentence; the ONNX Runtime session itself may run in several threads at once.
    """

    #: Noise values per input beyond which a failing sentence is not retried (64 MiB of float32).
    MAX_NOISE_VALUES = 2**24

    def __init__(self, session: onnxruntime.InferenceSession, noise_inputs: list[str]) -> None:
        self._session = session
        self.noise_inputs = noise_inputs
        self._local = threading.local()

    def start(self, noise: Callable[[int, int, int], np.ndarray]) -> None:
        self._local.noise, self._local.calls = noise, 0

    def run(self, output_names: list[str] | None, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        # onnxruntime stays out of the module's imports (see __init__).
        from onnxruntime.capi.onnxruntime_pybind11_state import Fail

        noise_source = getattr(self._local, "noise", None)
        if noise_source is None:
            raise RuntimeError("no noise source set: call PiperTTS.synthesize")
        call, self._local.calls = self._local.calls, self._local.calls + 1
        count = _NOISE_PER_PHONEME * int(feed["input"].shape[1])
        while True:
            noise = {name: noise_source(call, index, count) for index, name in enumerate(self.noise_inputs)}
            try:
                return self._session.run(output_names, feed | noise)
            except Fail as error:
                # A sentence slower than the first guess needs more noise than was fed. The values
                # are a prefix-stable stream, so the audio does not depend on the guess.
                short = any(f"Name:'{name}_reshape'" in str(error) for name in self.noise_inputs)
                if not short or count * 4 > self.MAX_NOISE_VALUES:
                    raise
                count *= 4


class PiperTTS:
    """Piper VITS voice (default: the offline joe voice, 22.05 kHz, one male US speaker).

    Parameters
    ----------
    model_path
        A Piper ``.onnx`` voice (its ``.onnx.json`` beside it); None = :func:`piper_joe_voice`.
    noise_scale
        Generator noise (VITS ``noise_scale``; voice default 0.667): more = livelier, less stable.
    length_scale
        Phoneme duration scale (> 1 slower, < 1 faster; default 1.0).
    noise_w
        Duration-predictor noise (VITS ``noise_w``; voice default 0.8): rhythm variation.
    sentence_pause_s
        Silence inserted between sentences.
    threads
        onnxruntime intra-op threads (None = onnxruntime's default).
    """

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        noise_scale: float | None = None,
        length_scale: float | None = None,
        noise_w: float | None = None,
        sentence_pause_s: float = 0.2,
        threads: int | None = None,
    ) -> None:
        # ONNX Runtime and piper (its phonemizer) load only when a voice is built.
        import onnxruntime
        from piper import PiperConfig, PiperVoice, SynthesisConfig

        path = Path(model_path) if model_path is not None else piper_joe_voice()
        #: The voice file spoken with.
        self.model_path = path
        config_path = Path(f"{path}.json")
        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        graph, noise_inputs = seeded_noise_graph(path)
        self._session = _NoiseFeedingSession(
            onnxruntime.InferenceSession(graph, sess_options=options, providers=["CPUExecutionProvider"]), noise_inputs
        )
        self._voice = PiperVoice(
            session=self._session,  # duck-typed: PiperVoice only calls run()
            config=PiperConfig.from_dict(json.loads(config_path.read_text(encoding="utf-8"))),
            download_dir=Path(os.environ.get("TMPDIR", "/tmp")),
        )
        self._syn_config = SynthesisConfig(
            noise_scale=noise_scale, length_scale=length_scale, noise_w_scale=noise_w, normalize_audio=False
        )
        self.sentence_pause_s = sentence_pause_s

    @property
    def sample_rate_hz(self) -> Hertz:
        return int(self._voice.config.sample_rate)

    def phonemes(self, text: str) -> list[list[str]]:
        """Piper's espeak-ng phonemes, one list per sentence."""
        return self._voice.phonemize(check_text(text))

    def synthesize(
        self,
        text: str,
        *,
        noise_scale: float | None = None,
        length_scale: float | None = None,
        noise_w: float | None = None,
        seed: int | None = None,
    ) -> Audio:
        """Speak ``text``; keyword arguments override the constructor's settings for this call.

        ``seed`` fixes VITS's noise: the same text, settings and seed give the same samples in
        any process and after any other call. None draws a fresh seed.

        Raises
        ------
        TextToSpeechError
            Empty text, or text with nothing pronounceable.
        """
        from piper import SynthesisConfig  # piper stays out of the module imports (see __init__)

        text = check_text(text)
        base = self._syn_config
        config = SynthesisConfig(
            noise_scale=base.noise_scale if noise_scale is None else noise_scale,
            length_scale=base.length_scale if length_scale is None else length_scale,
            noise_w_scale=base.noise_w_scale if noise_w is None else noise_w,
            normalize_audio=False,
        )
        if seed is None:
            seed = int(np.random.SeedSequence().generate_state(1)[0])
        gap = np.zeros(round(self.sentence_pause_s * self.sample_rate_hz), dtype=np.float32)
        parts: list[np.ndarray] = []

        def noise(call: int, index: int, count: int) -> np.ndarray:
            return np.random.default_rng((seed, call, index)).standard_normal(count, dtype=np.float32)

        self._session.start(noise)
        for chunk in self._voice.synthesize(text, syn_config=config):
            if parts:
                parts.append(gap)
            parts.append(chunk.audio_float_array)
        if not parts or sum(len(p) for p in parts) == 0:
            raise TextToSpeechError(f"nothing pronounceable in the text {text[:60]!r}")
        samples = np.concatenate(parts).astype(np.float32)
        peak = float(np.max(np.abs(samples)))
        if peak > 0.99:  # VITS can overshoot; keep the natural level otherwise
            samples *= 0.99 / peak
        return Audio(samples, self.sample_rate_hz)
