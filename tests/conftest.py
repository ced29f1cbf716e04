"""Fixtures shared by every test package."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

# pytest runs with --import-mode=importlib (no sys.path changes): make the helpers in tests/support
# (service_stack: ports, API keys, Redis databases, service processes) importable everywhere.
sys.path.insert(0, str(Path(__file__).resolve().parent / "support"))
from service_stack import REDIS_HOST, REDIS_PORT, UNIT_DB, redis_url

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


@pytest.fixture(scope="session")
def real_clip(shared_data_dir: Path) -> Path:
    """A real LibriSpeech utterance (~5-15 s, 16 kHz FLAC)."""
    return sorted((shared_data_dir / "librispeech" / "test-other").rglob("*.flac"))[0]


@pytest.fixture(scope="session")
def speaker_files(shared_data_dir: Path) -> dict[str, list[Path]]:
    """LibriSpeech test-other: speaker id → that speaker's utterances (16 kHz FLAC)."""
    corpus = shared_data_dir / "librispeech" / "test-other"
    return {p.name: sorted(p.glob("*.flac")) for p in sorted(corpus.iterdir()) if p.is_dir()}


@pytest.fixture(scope="session")
def redis_available() -> None:
    """A Redis answers at 127.0.0.1:6379 (the gateway and service tests use their own databases)."""
    try:
        redis.Redis(host=REDIS_HOST, port=REDIS_PORT, socket_connect_timeout=1).ping()
    except redis.RedisError:
        # CI runs scripts/ensure_redis.sh first (make test); nothing here starts one silently.
        pytest.fail(f"no Redis at {REDIS_HOST}:{REDIS_PORT}; run `bash scripts/ensure_redis.sh`")


@pytest.fixture
def unit_redis(redis_available: None) -> Iterator[redis.Redis]:
    """A client of the unit-test Redis database, empty before and after the test."""
    client = redis.Redis.from_url(redis_url(UNIT_DB))
    client.flushdb()
    yield client
    client.flushdb()
    client.close()
