"""A copy-synthesis vocoder by name or folder (:func:`load_copy_synthesizer`): a trained one of
:mod:`.neural_vocoder` or a pretrained HiFi-GAN of :mod:`.pretrained_vocoder`. What the data
builder's ``neural-vocoder-copy`` systems and the ``vcfad data vocoder`` commands load."""

from __future__ import annotations

from pathlib import Path

from services.detector.dataset.copy_synthesis import CopySynthesizer
from services.detector.dataset.neural_vocoder import DEFAULT_VOCODER, MODELS_DIR, NeuralVocoder
from services.detector.dataset.pretrained_vocoder import PRETRAINED, PretrainedHiFiGAN

__all__ = ["DEFAULT_VOCODER", "MODELS_DIR", "load_copy_synthesizer"]


def load_copy_synthesizer(model: str, *, threads: int = 1) -> CopySynthesizer:
    """A trained vocoder folder, or a pretrained one by name (``hifigan-v1-universal``,
    ``hifigan-v1-LJSpeech``, ``hifigan-ts-16k``: :mod:`services.detector.dataset.pretrained_vocoder`).

    A ``hifigan-…`` name that is not an existing folder is taken as a pretrained name, so a typo
    gets the list of valid names rather than "not a vocoder folder".
    """
    if model in PRETRAINED or (model.startswith("hifigan-") and not Path(model).exists()):
        return PretrainedHiFiGAN.load(model, threads=threads)
    return NeuralVocoder.load(Path(model), threads=threads)
