"""write_atomic: concurrent writers of one path, and a failed write leaving the old file."""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from shared.files import write_atomic


def _fill(path: str, value: int) -> None:
    for _ in range(200):
        write_atomic(Path(path), lambda temp: np.save(temp, np.full(50_000, value, dtype=np.float32)))


def test_concurrent_writers_of_one_path_all_succeed(tmp_path: Path) -> None:
    # Two processes filling one cache entry (what two trainings on builds that share clips do):
    # with a fixed temporary name, one process's rename found its temp file already moved.
    target = tmp_path / "cache" / "entry.npy"
    with ProcessPoolExecutor(max_workers=2) as pool:
        for future in [pool.submit(_fill, str(target), value) for value in (1, 2)]:
            future.result()
    written = np.load(target)
    assert written.shape == (50_000,) and len(set(written.tolist())) == 1
    assert [p.name for p in target.parent.iterdir()] == ["entry.npy"]  # no temporary files left


def test_a_failed_write_leaves_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "report.json"
    target.write_text("old", encoding="utf-8")

    def half_then_fail(temp: Path) -> None:
        temp.write_text("half", encoding="utf-8")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        write_atomic(target, half_then_fail)
    assert target.read_text(encoding="utf-8") == "old" and len(list(tmp_path.iterdir())) == 1
