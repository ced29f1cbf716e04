"""A build with external sources: real git snapshots of three 'demo pages' (real LibriSpeech speech
beside espeak-ng and flite speech), read at their commits, split by page, windowed like real speech."""

from __future__ import annotations

import csv
import shutil
import subprocess
from collections import defaultdict
from pathlib import Path

import pytest

from services.detector.dataset.build import BuildError, DatasetBuilder
from services.detector.dataset.config import REPO_ROOT, External, load_config

TINY = REPO_ROOT / "configs" / "detector" / "tiny.toml"
PAGES = {  # page -> (engine, system name, family)
    "page-a": ("espeak-ng", "Engine A", "classical"),
    "page-b": ("flite", "Engine B", "acoustic-model"),
    "page-c": ("espeak-ng", "Engine C", "end-to-end"),
}


def _git(repo: Path, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, check=True, text=True, env=env).stdout


def _speak(engine: str, text: str, out: Path) -> None:
    if shutil.which(engine) is None:
        pytest.skip(f"{engine} is not installed (scripts/install.sh installs it)")
    command = [engine, "-w", str(out), text] if engine == "espeak-ng" else [engine, "-t", text, "-o", str(out)]
    subprocess.run(command, check=True, capture_output=True)


@pytest.fixture(scope="module")
def catalogue(shared_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(catalogue file, snapshot root) of three pages, each with 3 real and 3 machine-made files."""
    root = tmp_path_factory.mktemp("snapshots")
    flacs = sorted((shared_data_dir / "librispeech" / "train-clean-100").rglob("*.flac"))
    entries = []
    for page_index, (page, (engine, system, family)) in enumerate(PAGES.items()):
        repo = root / f"demo+{page}"
        (repo / "gt").mkdir(parents=True)
        (repo / "ours").mkdir()
        _git(repo, "init", "-q")
        for index in range(3):
            shutil.copy(flacs[page_index * 3 + index], repo / "gt" / f"s{page_index}_{index}.flac")
            _speak(engine, f"Sentence number {index} of the page called {page}.", repo / "ours" / f"{index}.wav")
        _git(repo, "add", "-A")
        _git(repo, "commit", "-qm", "demo")
        commit = _git(repo, "rev-parse", "HEAD").strip()
        entries.append(
            f'[[source]]\nname = "{page}"\nrepository = "demo/{page}"\ncommit = "{commit}"\nlicence = "MIT"\n'
            f'[[source.sets]]\nglob = "gt/*"\nlabel = "bonafide"\ncorpus = "LibriSpeech"\ncondition = "audiobook"\n'
            f'language = "en"\nspeaker_regex = "(s\\\\d)_"\n'
            f'[[source.sets]]\nglob = "ours/*"\nlabel = "spoof"\ncorpus = "LibriSpeech"\ncondition = "audiobook"\n'
            f'language = "en"\nsystem = "{system}"\nfamily = "{family}"\n'
        )
    path = root / "sources.toml"
    path.write_text("\n".join(entries), encoding="utf-8")
    return path, root


def _external_config(catalogue: tuple[Path, Path], tmp_path: Path, **extra):
    path, root = catalogue
    external = External(
        catalogue=str(path),
        snapshots=[str(root)],
        cache_dir=str(tmp_path / "extracted"),
        dev_fraction=0.34,
        test_fraction=0.34,
        exclude_copies_of=[],
        **extra,
    )
    return load_config(TINY).model_copy(update={"external": external, "probe": False})


def _rows(out: Path) -> list[dict[str, str]]:
    with (out / "manifest.tsv").open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))


def test_external_pages_join_the_build_split_by_page(catalogue: tuple[Path, Path], tmp_path: Path) -> None:
    config = _external_config(catalogue, tmp_path)
    out = tmp_path / "build"
    summary = DatasetBuilder(config, output_dir=out, log=lambda _: None).run()
    assert summary is not None and summary.failed_items == 0
    rows = _rows(out)
    external = [row for row in rows if row["source"].startswith("demo/")]
    recorded = [row for row in external if row["label"] == "spoof"]
    assert {row["system"] for row in recorded} == {"Engine A", "Engine B", "Engine C"}
    assert {(row["system"], row["family"]) for row in recorded} == {
        (system, family) for _, system, family in PAGES.values()
    }
    # each page's real and fake windows are in one split, and the three pages fill three splits
    split_of_page: dict[str, set[str]] = defaultdict(set)
    for row in external:
        split_of_page[row["source"].split("/")[1].split("@")[0]].add(row["split"])
    assert all(len(splits) == 1 for splits in split_of_page.values())
    assert {next(iter(s)) for s in split_of_page.values()} == {"train", "dev", "test"}
    # every file gives at least one window, named per source; real ones join the real class
    real_external = [row for row in external if row["label"] == "bonafide"]
    assert len({row["source"].rsplit("@", 1)[0] for row in real_external}) == 9
    assert {row["speaker"] for row in real_external} == {"page-a/s0", "page-b/s1", "page-c/s2"}
    assert all(row["speaker"].startswith("page-") and row["family"] == "real" for row in real_external)
    assert len({row["source"].rsplit("@", 1)[0] for row in recorded}) == 9
    # the machine-made windows are not copied, cloned or given a channel: only augmented
    assert all(not row["augment"].startswith("channel(") for row in recorded)
    # a second run reuses every clip
    again = DatasetBuilder(config, output_dir=out, log=lambda _: None).run()
    assert again is not None and again.reused_items == len(rows)


def test_a_family_can_be_left_out(catalogue: tuple[Path, Path], tmp_path: Path) -> None:
    config = _external_config(catalogue, tmp_path, exclude_families=["acoustic-model"])
    summary = DatasetBuilder(config, output_dir=tmp_path / "build", log=lambda _: None).run()
    assert summary is not None
    systems = {row["system"] for row in _rows(tmp_path / "build") if row["source"].startswith("demo/")}
    assert "Engine B" not in systems and {"Engine A", "Engine C"} <= systems


def _pages(out: Path) -> set[str]:
    return {row["source"].split("/")[1].split("@")[0] for row in _rows(out) if row["source"].startswith("demo/")}


def test_sources_are_chosen_by_name_and_a_wrong_name_is_refused(catalogue: tuple[Path, Path], tmp_path: Path) -> None:
    # The default build reads one source of the catalogue and the external build every other one:
    # the two selections are complements, and a name the catalogue lacks stops the build.
    only = _external_config(catalogue, tmp_path, only_sources=["page-b"])
    assert DatasetBuilder(only, output_dir=tmp_path / "only", log=lambda _: None).run() is not None
    rest = _external_config(catalogue, tmp_path, exclude_sources=["page-b"])
    assert DatasetBuilder(rest, output_dir=tmp_path / "rest", log=lambda _: None).run() is not None
    assert _pages(tmp_path / "only") == {"page-b"} and _pages(tmp_path / "rest") == {"page-a", "page-c"}
    for key in ("only_sources", "exclude_sources"):
        wrong = _external_config(catalogue, tmp_path, **{key: ["page-z"]})
        with pytest.raises(BuildError, match=rf"external.{key}: not in the catalogue: page-z"):
            DatasetBuilder(wrong, output_dir=tmp_path / key, log=lambda _: None).run()


def test_no_snapshot_at_all_is_a_clear_error_unless_optional(catalogue: tuple[Path, Path], tmp_path: Path) -> None:
    config = _external_config(catalogue, tmp_path)
    external = config.external.model_copy(update={"snapshots": [str(tmp_path / "nothing-here")]})
    with pytest.raises(BuildError, match=r"none of the 3 sources .* has a snapshot under .*nothing-here"):
        DatasetBuilder(config.model_copy(update={"external": external}), output_dir=tmp_path / "a").run()
    optional = config.model_copy(update={"external": external.model_copy(update={"optional": True})})
    summary = DatasetBuilder(optional, output_dir=tmp_path / "b", log=lambda _: None).run()
    assert summary is not None and any("3 source(s) without a snapshot" in w for w in summary.warnings)
