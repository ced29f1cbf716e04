"""The cloner as a fake-speech generator of the detector's data builder (generator kind ``cloner``).

A plugin: the builder's registry (``services.detector.dataset.registry``) loads
:class:`ClonerGenerator` by its path, from the ``vcfad.fake_generators`` entry point or the
registry's in-repo list, so the detector package does not import the cloner. Nothing of the
detector is imported here either: the system is read by its ``name``.
"""

from __future__ import annotations

from typing import Any

from services.cloner.config import ClonerSettings
from services.cloner.pipeline import Cloner
from shared.audio import Audio


class ClonerGenerator:
    """The project's own cloner (:class:`services.cloner.pipeline.Cloner`): a real speaker's voice
    speaking a VCTK sentence."""

    def __init__(self, system: Any) -> None:
        # The system's ``options`` are cloner settings (e.g. ``{ envelope_fit = true }``): what a
        # recipe names overrides the builder's VCFAD_CLONER_* environment for those fields.
        options = dict(getattr(system, "options", {}) or {})
        unknown = sorted(set(options) - set(ClonerSettings.model_fields))
        if unknown:
            raise ValueError(f"system {system.name!r}: unknown cloner option(s) {unknown} (see ClonerSettings)")
        try:
            # Training fakes are never watermarked: a detector trained on marked clones would learn
            # the mark (which it reads separately) instead of what a clone sounds like.
            settings = ClonerSettings(**{**options, "watermark": False})
            self.cloner = Cloner.from_settings(settings)
        except Exception as error:  # any failure to build the cloner makes the system unavailable
            raise RuntimeError(f"the vcfad cloner is unavailable: {error}") from None
        self.system, self.family = system.name, "voice-clone"

    def clone(self, reference: Audio, text: str) -> Audio:
        return self.cloner.clone([reference.to_wav_bytes()], text)
