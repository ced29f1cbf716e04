"""The cloner as the data builder's generator: a recipe's options are the cloner's settings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from services.cloner.fake_generator import ClonerGenerator
from services.detector.dataset import registry
from services.detector.dataset.config import System
from services.detector.dataset.generators import GeneratorUnavailableError
from shared.audio import load_audio


def test_an_unknown_option_is_named_and_the_system_is_unavailable() -> None:
    system = System(name="vcfad-cloner", kind="cloner", split="train", options={"envelope_fitt": True})
    with pytest.raises(ValueError, match=r"unknown cloner option\(s\) \['envelope_fitt'\]"):
        ClonerGenerator(system)
    with pytest.raises(GeneratorUnavailableError, match="envelope_fitt"):
        registry.build_generator(system)


@pytest.mark.slow
def test_options_set_the_cloner_and_its_clones_are_never_watermarked(tmp_path: Path, real_clip: Path) -> None:
    options = {"backend": "piper", "envelope_fit": True, "voice_cache_dir": str(tmp_path), "threads": 1}
    generator = ClonerGenerator(System(name="vcfad-cloner", kind="cloner", split="train", options=options))
    assert generator.cloner.backend_name == "piper" and generator.cloner.envelope_fitter is not None
    assert generator.cloner.watermarker is None
    clone = generator.clone(load_audio(real_clip), "Please call Stella.")
    assert clone.duration_s > 0.5 and np.isfinite(clone.samples).all()
    assert list(tmp_path.glob("envelope-*.npz")), "the stage was fitted for the reference"
