"""write_atomic: concurrent writers of one path, and a failed write leaving the old file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from shared.files import write_atomic

REPO_ROOT = Path(__file__).resolve().parents[2]


# Each writer is its own interpreter (a fork of the test process, which holds library threads,
# could deadlock): it rewrites one path 200 times with an array filled with its own value.
_WRITER = """
import sys
from pathlib import Path
import numpy as np
from shared.files import write_atomic
target, value = Path(sys.argv[1]), float(sys.argv[2])
for _ in range(200):
    write_atomic(target, lambda temp: np.save(temp, np.full(50_000, value, dtype=np.float32)))
"""


def test_concurrent_writers_of_one_path_all_succeed(tmp_path: Path) -> None:
    # Two processes filling one cache entry (what two trainings on builds that share clips do):
    # with a fixed temporary name, one process's rename found its temp file already moved.
    target = tmp_path / "cache" / "entry.npy"
    writers = [
        subprocess.Popen([sys.executable, "-c", _WRITER, str(target), value], cwd=REPO_ROOT, stderr=subprocess.PIPE)
        for value in ("1", "2")
    ]
    for writer in writers:
        _, stderr = writer.communicate(timeout=120)
        assert writer.returncode == 0, stderr.decode()
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
