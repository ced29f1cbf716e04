"""Fixtures shared by every test package."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
#: Real speech next to the repo (see ../shared/data/README.md); override with VCFAD_SHARED_DATA.
SHARED_DATA_DIR = Path(os.environ.get("VCFAD_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """``../shared/data``; tests that need it are skipped with a clear reason when it is absent."""
    if not (SHARED_DATA_DIR / "README.md").exists():
        pytest.skip(f"shared speech data not found at {SHARED_DATA_DIR} (set VCFAD_SHARED_DATA)")
    return SHARED_DATA_DIR


@pytest.fixture(scope="session")
def librispeech_clip(shared_data_dir: Path) -> Path:
    """One real LibriSpeech utterance (16 kHz FLAC)."""
    return sorted((shared_data_dir / "librispeech" / "test-other").rglob("*.flac"))[0]
