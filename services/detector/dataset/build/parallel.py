"""A build in one call (:func:`build_dataset`), in ``jobs`` processes when asked: shard 1 here,
the others in child ``vcfad data build --shard K/N`` processes, then the manifest here."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from services.detector.dataset.build.builder import DatasetBuilder
from services.detector.dataset.build.items import BuildError, BuildSummary, Shard
from services.detector.dataset.config import BuildConfig


def build_dataset(
    config: BuildConfig,
    *,
    output_dir: Path | None = None,
    probe: bool | None = None,
    jobs: int = 1,
    config_path: Path | None = None,
    window_cache_dir: Path | None = None,
) -> BuildSummary:
    """Build the dataset ``config`` describes (see :class:`DatasetBuilder`).

    ``jobs`` > 1 makes the clips in that many processes (this one and ``jobs - 1`` children running
    ``vcfad data build CONFIG_PATH --shard K/N``), then writes the manifest here. Each clip is seeded
    by its id, so the dataset does not depend on ``jobs``. Set ``OMP_NUM_THREADS`` so that
    ``jobs`` × threads does not exceed the cores.
    """
    if jobs < 1:
        raise BuildError(f"--jobs {jobs}: must be 1 or more")
    builder = DatasetBuilder(config, output_dir=output_dir, window_cache_dir=window_cache_dir)
    if jobs > 1 and window_cache_dir is not None:
        raise BuildError("a build that reads another build's window cache runs in one process (no --jobs)")
    if jobs > (os.cpu_count() or 1):
        builder.log(f"warning: --jobs {jobs} > {os.cpu_count()} cores; each job also holds every generator in memory")
    if jobs > 1:
        if config_path is None:
            raise BuildError("a parallel build needs the config file's path (its children read it)")
        _run_shards(builder, config_path, jobs)
    summary = builder.run(probe=probe)
    assert summary is not None
    return summary


def _run_shards(builder: DatasetBuilder, config_path: Path, jobs: int) -> None:
    """Make the clips of shards 2..N in child processes and shard 1 here; fail if any child fails.

    If this process fails or is interrupted, the children are stopped too: a re-run resumes them.
    """
    command = [sys.executable, "-m", "vcfad.cli", "data", "build", str(config_path)]
    command += ["--output-dir", str(builder.output_dir)]
    children = [subprocess.Popen([*command, "--shard", f"{index + 1}/{jobs}"]) for index in range(1, jobs)]
    # A plain `kill` of this process should stop the children as Ctrl-C does (via SystemExit below).
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        builder.run(shard=Shard(0, jobs))
        codes = [child.wait() for child in children]
    except BaseException:
        for child in children:
            child.terminate()
        for child in children:
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
    failed = [f"{index + 2}/{jobs}" for index, code in enumerate(codes) if code != 0]
    if failed:
        raise BuildError(f"shard(s) {', '.join(failed)} failed; re-run the build to resume")
