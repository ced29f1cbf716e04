"""Fixtures of the cloner tests: one Piper-backed cloner per session (models load once).

``speaker_files`` (LibriSpeech by speaker) is in tests/conftest.py: tests/shared uses it too."""

from __future__ import annotations

import pytest

from services.cloner.config import ClonerSettings
from services.cloner.pipeline import Cloner


@pytest.fixture(scope="session")
def piper_cloner(tmp_path_factory: pytest.TempPathFactory) -> Cloner:
    settings = ClonerSettings(backend="piper", threads=1, voice_cache_dir=tmp_path_factory.mktemp("voices"))
    return Cloner.from_settings(settings)
