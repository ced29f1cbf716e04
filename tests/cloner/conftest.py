"""Fixtures of the cloner tests: one Piper-backed cloner per session (models load once)."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.cloner.config import ClonerSettings
from services.cloner.pipeline import Cloner


@pytest.fixture(scope="session")
def piper_cloner(tmp_path_factory: pytest.TempPathFactory) -> Cloner:
    settings = ClonerSettings(backend="piper", threads=1, voice_cache_dir=tmp_path_factory.mktemp("voices"))
    return Cloner.from_settings(settings)


@pytest.fixture(scope="session")
def speaker_files(shared_data_dir: Path) -> dict[str, list[Path]]:
    corpus = shared_data_dir / "librispeech" / "test-other"
    return {p.name: sorted(p.glob("*.flac")) for p in sorted(corpus.iterdir()) if p.is_dir()}
