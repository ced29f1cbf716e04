"""External sources: the catalogue's checks, a real git snapshot read at a pinned commit, the summary."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
import soundfile

from shared.sources import (
    CONDITIONS,
    EXTERNAL_DEV_REPOSITORIES,
    FAMILIES,
    RESERVED_REPOSITORIES,
    SnapshotStore,
    SourceError,
    assign_splits,
    blob_ids_under,
    collect_clips,
    git_blob_id,
    load_sources,
    parse_sources,
    summarise,
    summary_markdown,
    system_key,
)


def _git(repo: Path, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, check=True, text=True, env=env).stdout


@pytest.fixture
def snapshot(tmp_path: Path, shared_data_dir: Path) -> tuple[Path, str, str]:
    """A repository ``demo/page`` under a snapshot root: real speech as GT and as two 'systems'.

    Returns (root, first commit, second commit); the second commit adds a file and changes one.
    """
    flacs = sorted((shared_data_dir / "librispeech" / "test-other").rglob("*.flac"))[:4]
    repo = tmp_path / "mirror" / "demo+page" / "repo"
    (repo / "wavs" / "gt").mkdir(parents=True)
    (repo / "wavs" / "sysA").mkdir(parents=True)
    _git(repo, "init", "-q")
    for index, flac in enumerate(flacs[:2]):
        shutil.copy(flac, repo / "wavs" / "gt" / f"p22{index}_00{index}.flac")
    shutil.copy(flacs[2], repo / "wavs" / "sysA" / "p220_001.flac")
    (repo / "index.html").write_text("<audio src='wavs/gt/p220_000.flac'>")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "one")
    first = _git(repo, "rev-parse", "HEAD").strip()
    shutil.copy(flacs[3], repo / "wavs" / "sysA" / "p221_002.flac")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "two")
    second = _git(repo, "rev-parse", "HEAD").strip()
    return tmp_path / "mirror", first, second


def _catalogue(commit: str, **source_extra) -> dict:
    return {
        "source": [
            {
                "name": "demo-page",
                "repository": "demo/page",
                "commit": commit,
                "licence": "MIT",
                "sets": [
                    {
                        "glob": "wavs/gt/*",
                        "label": "bonafide",
                        "corpus": "VCTK",
                        "condition": "studio-read",
                        "language": "en",
                        "speaker_regex": r"(p\d{3})_",
                        "files": 2,
                    },
                    {
                        "glob": "wavs/sysA/*",
                        "label": "spoof",
                        "corpus": "VCTK",
                        "condition": "studio-read",
                        "language": "en",
                        "system": "SysA",
                        "family": "end-to-end",
                        "files": 1,
                    },
                ],
                **source_extra,
            }
        ]
    }


def test_clips_are_read_at_the_pinned_commit_byte_for_byte(snapshot: tuple[Path, str, str], tmp_path: Path) -> None:
    root, first, second = snapshot
    store = SnapshotStore([root], tmp_path / "cache")
    (source,) = parse_sources(_catalogue(first))
    clips = store.clips(source)
    assert sorted((c.label, c.system, c.speaker) for c in clips) == [
        ("bonafide", "bonafide", "p220"),
        ("bonafide", "bonafide", "p221"),
        ("spoof", "SysA", "unknown"),
    ]
    paths = store.extract(clips)
    for clip, path in zip(clips, paths, strict=True):
        expected = subprocess.run(
            ["git", "-C", str(root / "demo+page" / "repo"), "show", f"{first}:{clip.repo_path}"],
            capture_output=True,
            check=True,
        ).stdout
        assert path.read_bytes() == expected
        assert soundfile.info(str(path)).samplerate == 16_000
    # The later commit's extra file is not part of the first commit's source.
    (later,) = parse_sources(_catalogue(second))
    assert len(store.clips(later)) == 4


def test_summary_counts_seconds_speakers_and_flags_a_changed_count(
    snapshot: tuple[Path, str, str], tmp_path: Path
) -> None:
    root, first, second = snapshot
    store = SnapshotStore([root], tmp_path / "cache")
    summary = summarise(parse_sources(_catalogue(first))[0], store)
    assert (summary.bonafide_clips, summary.spoof_clips, summary.unreadable) == (2, 1, 0)
    assert summary.speakers == {"VCTK:p220", "VCTK:p221"}
    assert summary.systems == {"SysA"} and summary.families == {"end-to-end"}
    assert 2.0 < summary.bonafide_s < 120.0 and summary.spoof_s > 1.0
    assert summary.count_mismatches == ()
    moved = summarise(parse_sources(_catalogue(second))[0], store)
    assert moved.count_mismatches == ("set 2 (wavs/sysA/*): 2 files, catalogue says 1",)
    table = summary_markdown([summary, moved])
    assert "| demo-page | demo/page | MIT | 2 |" in table
    assert "2 speakers" in table and "1 systems" in table


def test_a_missing_snapshot_is_reported_not_raised(tmp_path: Path) -> None:
    store = SnapshotStore([tmp_path], tmp_path / "cache")
    (source,) = parse_sources(_catalogue("a" * 40))
    assert not summarise(source, store).available
    with pytest.raises(SourceError, match="no snapshot of demo/page holding commit aaaaaaaaaaaa"):
        store.clips(source)
    assert "no snapshot" in summary_markdown([summarise(source, store)])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"repository": "Edresson/YourTTS"}, "reserved for independent evaluation"),
        ({"repository": "resemble-ai/Resemblyzer"}, "reserved for independent evaluation"),
        ({"repository": "DIN05AUR/Audio_DeepFake_Detection"}, "where external-dev comes from"),
        ({"commit": "abc"}, "full 40-character hex"),
        ({"split": "eval"}, "split must be train, dev or test"),
        ({"colour": "red"}, "unknown key"),
        ({"sets": []}, "no \\[\\[source.sets\\]\\]"),
    ],
)
def test_bad_source_entries_are_refused_by_name(change: dict, message: str) -> None:
    document = _catalogue("b" * 40)
    document["source"][0].update(change)
    with pytest.raises(SourceError, match=message):
        parse_sources(document)


@pytest.mark.parametrize(
    ("set_change", "message"),
    [
        ({"label": "fake"}, "label must be"),
        ({"condition": "bathroom"}, "condition 'bathroom' is not one of"),
        ({"family": "magic"}, "family 'magic' is not one of"),
        ({"system": ""}, "needs 'system'"),
        ({"speaker_regex": "p\\d+"}, "capturing group"),
        ({"speaker_regex": "(p"}, "does not compile"),
    ],
)
def test_bad_sets_are_refused_by_name(set_change: dict, message: str) -> None:
    document = _catalogue("b" * 40)
    document["source"][0]["sets"][1].update(set_change)
    with pytest.raises(SourceError, match=message):
        parse_sources(document)


def test_a_bonafide_set_needs_a_speaker_and_no_system() -> None:
    document = _catalogue("b" * 40)
    del document["source"][0]["sets"][0]["speaker_regex"]
    with pytest.raises(SourceError, match="give 'speaker'"):
        parse_sources(document)
    document = _catalogue("b" * 40)
    document["source"][0]["sets"][0]["family"] = "vocoder"
    with pytest.raises(SourceError, match="no 'system' or 'family'"):
        parse_sources(document)


def test_a_file_in_two_sets_is_an_error(snapshot: tuple[Path, str, str], tmp_path: Path) -> None:
    root, first, _ = snapshot
    document = _catalogue(first)
    document["source"][0]["sets"][1]["glob"] = "wavs/*"
    (source,) = parse_sources(document)
    with pytest.raises(SourceError, match="is matched by sets 1 and 2"):
        SnapshotStore([root], tmp_path / "cache").clips(source)


def _source(name: str, systems: list[str], split: str | None = None) -> dict:
    sets = [
        {"glob": f"{name}/gt/*", "label": "bonafide", "corpus": "VCTK", "condition": "studio-read", "language": "en",
         "speaker": "p225"},
    ] + [
        {"glob": f"{name}/{i}/*", "label": "spoof", "corpus": "VCTK", "condition": "studio-read", "language": "en",
         "system": system, "family": "end-to-end"}
        for i, system in enumerate(systems)
    ]  # fmt: skip
    table = {"name": name, "repository": f"o/{name}", "commit": "c" * 40, "licence": "MIT", "sets": sets}
    if split:
        table["split"] = split
    return table


def test_splits_keep_every_system_in_one_split_and_fill_dev_and_test() -> None:
    tables = [_source(f"page{i}", [f"Sys{i}", "HiFi-GAN" if i % 5 == 0 else f"Own{i}"]) for i in range(40)]
    tables.append(_source("fixed", ["hifi gan"], split="test"))  # the same system as pages 0, 5, 10 ...
    sources = parse_sources({"source": tables})
    counts = {source.name: 10 for source in sources}
    splits = assign_splits(sources, counts, seed=1, dev_fraction=0.2, test_fraction=0.2)
    assert assign_splits(sources, counts, seed=1, dev_fraction=0.2, test_fraction=0.2) == splits
    # the fixed page pulls every page with HiFi-GAN into test along with it
    assert {splits[f"page{i}"] for i in range(0, 40, 5)} == {"test"}
    where: dict[str, set[str]] = {}
    for source in sources:
        for source_set in source.sets[1:]:
            where.setdefault(system_key(source_set.system), set()).add(splits[source.name])
    assert all(len(found) == 1 for found in where.values())
    shares = {split: sum(counts[n] for n, s in splits.items() if s == split) / 410 for split in ("dev", "test")}
    assert 0.15 <= shares["dev"] <= 0.25 and shares["test"] >= 0.19
    assert assign_splits(sources, counts, seed=2, dev_fraction=0.2, test_fraction=0.2) != splits


def test_fixed_splits_that_share_a_system_conflict() -> None:
    sources = parse_sources({"source": [_source("a", ["VITS"], "train"), _source("b", ["vits"], "dev")]})
    with pytest.raises(SourceError, match=r"fixed to different splits: a \(train\), b \(dev\)"):
        assign_splits(sources, {"a": 1, "b": 1}, seed=0, dev_fraction=0.5, test_fraction=0.0)


def test_blob_ids_match_git_so_copies_of_a_set_are_found(snapshot: tuple[Path, str, str], tmp_path: Path) -> None:
    root, first, _ = snapshot
    store = SnapshotStore([root], tmp_path / "cache")
    clips = store.clips(parse_sources(_catalogue(first))[0])
    copies = tmp_path / "elsewhere"
    copies.mkdir()
    shutil.copy(store.extract(clips[:1])[0], copies / "renamed.flac")
    (copies / "notes.txt").write_text("not audio")
    assert blob_ids_under(copies) == {clips[0].blob}
    assert git_blob_id(b"hello\n") == "ce013625030ba8dba906f756967f9e9ca394464a"  # git hash-object
    assert blob_ids_under(tmp_path / "absent") == frozenset()


def test_collect_drops_copies_of_excluded_files_and_of_earlier_sources(
    snapshot: tuple[Path, str, str], tmp_path: Path
) -> None:
    root, first, second = snapshot
    store = SnapshotStore([root], tmp_path / "cache")
    early = parse_sources(_catalogue(first))[0]
    later = parse_sources(_catalogue(second))[0]
    later = replace(later, name="later-page")
    excluded = frozenset({store.clips(early)[0].blob})
    missing = replace(early, name="elsewhere", repository="nobody/here")
    result = collect_clips([early, later, missing], store, seed=0, excluded_blobs=excluded)
    assert result.unavailable == ["elsewhere"]
    assert result.excluded_copies == 2  # once in each page
    assert result.duplicates == 2  # the later page's copies of the early page's other two files
    assert [(clip.source, clip.repo_path) for clip in result.clips] == [
        ("demo-page", "wavs/gt/p221_001.flac"),
        ("demo-page", "wavs/sysA/p220_001.flac"),
        ("later-page", "wavs/sysA/p221_002.flac"),
    ]
    capped = collect_clips([later], store, seed=0, max_clips_per_set=1)
    assert capped.capped == 2 and len(capped.clips) == 2
    assert collect_clips([later], store, seed=0, max_clips_per_set=1).clips == capped.clips


def test_a_larger_real_cap_adds_real_files_and_keeps_the_split_counts(
    snapshot: tuple[Path, str, str], tmp_path: Path
) -> None:
    root, _, second = snapshot
    store = SnapshotStore([root], tmp_path / "cache")
    sources = parse_sources(_catalogue(second))
    narrow = collect_clips(sources, store, seed=3, max_clips_per_set=1)
    wide = collect_clips(sources, store, seed=3, max_clips_per_set=1, max_real_clips_per_set=2)
    assert sorted(c.label for c in narrow.clips) == ["bonafide", "spoof"]
    assert sorted(c.label for c in wide.clips) == ["bonafide", "bonafide", "spoof"]
    assert wide.capped == 1 and narrow.capped == 2
    # The smaller cap's files are the head of the same seeded order, and the splits see one count.
    assert {c.blob for c in narrow.clips} <= {c.blob for c in wide.clips}
    assert wide.split_counts == narrow.split_counts == {"demo-page": 2}


def test_the_shipped_catalogue_is_valid_and_broad() -> None:
    catalogue = Path(__file__).resolve().parents[2] / "configs" / "detector" / "sources.toml"
    sources = load_sources(catalogue)
    assert len(sources) >= 100
    spoof_sets = [s for source in sources for s in source.sets if s.label == "spoof"]
    assert {s.family for s in spoof_sets} == set(FAMILIES)
    assert len({system_key(s.system) for s in spoof_sets}) >= 40
    real_sets = [s for source in sources for s in source.sets if s.label == "bonafide"]
    assert {s.condition for s in real_sets} == set(CONDITIONS)
    text = catalogue.read_text(encoding="utf-8").lower()
    assert not any(repository in text for repository in RESERVED_REPOSITORIES | EXTERNAL_DEV_REPOSITORIES)
