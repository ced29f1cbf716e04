"""Build the tiny config end to end: manifest contract, splits, audio format, probe, resume."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from services.detector.dataset.build import MANIFEST_COLUMNS, DatasetBuilder, Shard, build_dataset
from services.detector.dataset.config import REPO_ROOT, RealSource, load_config
from services.detector.dataset.readers import CorpusError
from vcfad.cli import main

TINY = REPO_ROOT / "configs" / "detector" / "tiny.toml"


@pytest.fixture(scope="module")
def tiny_build(shared_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tiny")
    assert main(["data", "build", str(TINY), "--output-dir", str(out)]) == 0
    return out


def _rows(out: Path) -> list[dict[str, str]]:
    with (out / "manifest.tsv").open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        assert tuple(reader.fieldnames or ()) == MANIFEST_COLUMNS
        return list(reader)


def test_manifest_contract(tiny_build: Path) -> None:
    rows = _rows(tiny_build)
    assert len(rows) >= 30
    for row in rows:
        assert row["label"] in ("bonafide", "spoof") and row["split"] in ("train", "dev", "test")
        assert (row["label"] == "bonafide") == (row["system"] == "bonafide") == (row["family"] == "real")
        info = sf.info(tiny_build / row["path"])
        assert (info.samplerate, info.channels, info.subtype) == (16_000, 1, "PCM_16")
        assert abs(info.duration - float(row["duration_s"])) < 0.01
        assert 0.5 <= float(row["duration_s"]) <= 6.0
        assert row["augment"]
    spoofs = [row for row in rows if row["label"] == "spoof"]
    assert {row["family"] for row in spoofs} == {"classical-tts", "signal-vocoder-copy"}
    assert all(row["transcript"] for row in spoofs if row["family"] == "classical-tts")
    # Balanced classes, both classes in every split.
    for split in ("train", "dev", "test"):
        labels = [row["label"] for row in rows if row["split"] == split]
        assert labels.count("bonafide") == labels.count("spoof") > 0, split


def test_splits_are_speaker_and_system_disjoint(tiny_build: Path) -> None:
    rows = _rows(tiny_build)
    split_of: dict[str, set[str]] = {}
    for row in rows:
        key = row["speaker"] if row["label"] == "bonafide" else row["system"]
        split_of.setdefault(key, set()).add(row["split"])
    assert all(len(splits) == 1 for splits in split_of.values()), split_of
    real_speakers = {row["speaker"]: row["split"] for row in rows if row["label"] == "bonafide"}
    for row in rows:
        if row["system"] == "world-copy":  # copy-synthesis stays with its source speaker's split
            assert real_speakers.get(row["speaker"], row["split"]) == row["split"]
    assert {r["split"] for r in rows if r["source"].startswith("librispeech/test-other")} == {"test"}


def test_probe_command(tiny_build: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "probe", str(tiny_build / "manifest.tsv"), "--output", str(tmp_path / "p.json")]) == 0
    out = capsys.readouterr().out
    assert "EER test" in out and "festival-kal" in out
    assert json.loads((tmp_path / "p.json").read_text(encoding="utf-8"))["counts"]["test"]["spoof"] > 0


def test_probe_written(tiny_build: Path) -> None:
    probe = json.loads((tiny_build / "probe.json").read_text(encoding="utf-8"))
    assert probe["features"] == ["duration_s", "noise_floor_db", "silence_share", "high_band_db"]
    assert set(probe["eer"]) == {"train", "dev", "test"}
    assert {"espeak-ng", "world-copy", "flite-slt", "festival-kal"} <= set(probe["per_system"])
    info = json.loads((tiny_build / "build_info.json").read_text(encoding="utf-8"))
    assert info["failed_items"] == 0


def test_parallel_build_makes_the_same_dataset(tiny_build: Path, tmp_path: Path) -> None:
    # Two processes (this one and a `--shard 2/2` child) split the clips by id; since every clip is
    # seeded by its id, the manifest and every clip's bytes equal the one-process build's.
    assert main(["data", "build", str(TINY), "--output-dir", str(tmp_path), "--jobs", "2", "--no-probe"]) == 0
    info = json.loads((tmp_path / "build_info.json").read_text(encoding="utf-8"))
    assert info["reused_items"] == len(_rows(tmp_path)) and info["failed_items"] == 0  # the shards made them all
    assert (tmp_path / "manifest.tsv").read_text(encoding="utf-8") == (tiny_build / "manifest.tsv").read_text(
        encoding="utf-8"
    )
    for row in _rows(tiny_build):
        assert (tmp_path / row["path"]).read_bytes() == (tiny_build / row["path"]).read_bytes(), row["path"]


def test_verify_remakes_clips_and_names_one_that_differs(
    tiny_build: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil

    import numpy as np

    copy = tmp_path / "tiny"
    shutil.copytree(tiny_build, copy)
    shutil.rmtree(copy / "cache")  # the clips are remade from their seeds, not read back
    argv = ["data", "verify", str(TINY), "--output-dir", str(copy), "--per-system", "2"]
    assert main(argv) == 0
    report = capsys.readouterr().out
    threads = json.loads((copy / "build_info.json").read_text(encoding="utf-8"))["compute_threads"]
    assert f"remade with {threads} compute thread(s)" in report
    systems = {row["system"] for row in _rows(copy)}
    assert all(f"{system}" in report for system in systems) and "2/2 identical" in report
    # A clip that is not what its seed makes (here: a faint tone added) is named, exit code 1.
    checked = DatasetBuilder(load_config(TINY), output_dir=copy).verify(2).checks["world-copy"][0][0]
    samples, rate = sf.read(copy / checked, dtype="float32")
    tone = 0.001 * np.sin(2 * np.pi * 440 * np.arange(len(samples)) / rate)
    sf.write(copy / checked, samples + tone, rate, subtype="PCM_16")
    assert main(argv) == 1
    report = capsys.readouterr().out
    assert f"differs: {checked}" in report and "world-copy" in report and "1/2 identical" in report
    assert main(["data", "verify", str(TINY), "--output-dir", str(tmp_path / "none")]) == 2
    # A clip made under other settings is reported as stale (a rebuild remakes it), not as differing.
    sidecar = (copy / checked).with_suffix(".json")
    sidecar.write_text(sidecar.read_text(encoding="utf-8").replace('"fingerprint": "', '"fingerprint": "x'))
    assert main(argv) == 1
    assert f"stale: {checked}" in capsys.readouterr().out


def test_as_recorded_build_reuses_the_windows_without_augmentation(tiny_build: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "tiny"
    shutil.copytree(tiny_build, copy)
    windows_before = sorted((copy / "cache" / "windows").rglob("*.wav"))
    stamps = [path.stat().st_mtime_ns for path in windows_before]
    argv = ["data", "build", str(TINY), "--output-dir", str(copy), "--as-recorded", "--no-probe"]
    assert main(argv) == 0
    rows = _rows(copy / "as-recorded")
    augmented = {row["path"]: row for row in _rows(copy)}
    # The same plan (a real window that is only silence without the added floor may drop out) ...
    assert rows and {row["path"] for row in rows} <= set(augmented) and len(rows) >= 0.9 * len(augmented)
    assert all(row["augment"] == "none" for row in rows)
    # ... made from the same fake windows, which were read, not made again.
    assert sorted((copy / "cache" / "windows").rglob("*.wav")) == windows_before
    assert [path.stat().st_mtime_ns for path in windows_before] == stamps
    assert not (copy / "as-recorded" / "cache").exists()
    assert main([*argv, "--jobs", "2"]) == 2
    assert main(["data", "verify", str(TINY), "--output-dir", str(copy), "--as-recorded", "--per-system", "1"]) == 0
    # Without a main build there are no windows to copy: said, not made from scratch.
    assert main(["data", "build", str(TINY), "--output-dir", str(tmp_path / "empty"), "--as-recorded"]) == 2


def test_shard_alone_writes_no_manifest(
    shared_data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["data", "build", str(TINY), "--output-dir", str(tmp_path), "--shard", "3/2"]) == 2
    assert "shard 3/2" in capsys.readouterr().err
    config = load_config(TINY)
    small = config.model_copy(update={"real": [r.model_copy(update={"max_clips": 2}) for r in config.real]})
    assert DatasetBuilder(small, output_dir=tmp_path).run(shard=Shard(1, 2)) is None
    second = set((tmp_path / "audio").rglob("*.wav"))
    assert second and not (tmp_path / "manifest.tsv").exists()
    DatasetBuilder(small, output_dir=tmp_path).run(shard=Shard(0, 2))
    both = set((tmp_path / "audio").rglob("*.wav"))
    summary = build_dataset(small, output_dir=tmp_path, probe=False)  # makes nothing: the shards made it all
    assert summary.reused_items == len(_rows(tmp_path)) == len(both) > len(second)


def test_rebuild_resumes_and_remakes_changed_clips(tiny_build: Path) -> None:
    before = (tiny_build / "manifest.tsv").read_text(encoding="utf-8")
    victim = tiny_build / _rows(tiny_build)[0]["path"]
    victim.unlink()  # as if the build had been interrupted before this clip
    config = load_config(TINY)
    summary = build_dataset(config, output_dir=tiny_build, probe=False)
    assert summary.reused_items == len(_rows(tiny_build)) - 1
    assert (tiny_build / "manifest.tsv").read_text(encoding="utf-8") == before
    assert not list(tiny_build.rglob("*.partial*"))
    # A new augmentation re-augments every clip but reuses the cached fake windows (no re-synthesis);
    # channel transfer gives every TTS fake (and nothing else) the channel of a real recording of its split.
    sources = {row["path"]: row["source"] for row in _rows(tiny_build)}
    cached = {path: path.stat().st_mtime_ns for path in (tiny_build / "cache").rglob("*.wav")}
    assert len(cached) == sum(row["label"] == "spoof" for row in _rows(tiny_build))
    changes = {"codec_p": 0.0, "channel_transfer_p": 1.0}
    no_codec = config.model_copy(update={"augment": config.augment.model_copy(update=changes)})
    summary = build_dataset(no_codec, output_dir=tiny_build, probe=False)
    assert summary.reused_items == 0 and summary.failed_items == 0
    rows = _rows(tiny_build)
    assert {row["path"]: row["source"] for row in rows} == sources
    assert {path: path.stat().st_mtime_ns for path in (tiny_build / "cache").rglob("*.wav")} == cached
    assert not any(codec in row["augment"] for row in rows for codec in ("mp3", "ogg", "opus"))
    speakers = {row["split"]: set() for row in rows}
    for row in rows:
        if row["label"] == "bonafide":
            speakers[row["split"]].add(row["speaker"])
    for row in rows:
        transferred = row["augment"].startswith("channel(")
        assert transferred == (row["family"] == "classical-tts"), row
        if transferred:  # the channel comes from a real speaker of the same split, never of another
            source = row["augment"].split(")")[0].removeprefix("channel(")
            assert not any(source in found for split, found in speakers.items() if split != row["split"]), row
    changed = config.model_copy(update={"systems": [s for s in config.systems if s.name != "festival-kal"]})
    summary = build_dataset(changed, output_dir=tiny_build, probe=False)
    assert "test:festival-kal" not in summary.per_system
    assert not (tiny_build / "audio" / "test" / "festival-kal").exists() or not list(
        (tiny_build / "audio" / "test" / "festival-kal").glob("*.wav")
    )
    # Distortion and the gate draw from their own random streams: turning one on remakes the clips
    # it hits and leaves every other clip byte for byte as it was.
    for setting, mark in (({"distortion_p": 0.5}, "distort("), ({"gate_p": 0.5}, "gate(")):
        before = {row["path"]: (row["augment"], (tiny_build / row["path"]).read_bytes()) for row in _rows(tiny_build)}
        changed = changed.model_copy(update={"augment": changed.augment.model_copy(update=setting)})
        build_dataset(changed, output_dir=tiny_build, probe=False)
        after = _rows(tiny_build)
        assert {row["path"] for row in after} == set(before)
        hit = [row["path"] for row in after if mark in row["augment"]]
        assert 0 < len(hit) < len(after)
        for row in after:
            augment_before, audio_before = before[row["path"]]
            same = (row["augment"], (tiny_build / row["path"]).read_bytes()) == (augment_before, audio_before)
            assert same == (row["path"] not in hit), row


def test_cli_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(TINY.read_text(encoding="utf-8").replace('split = "dev"', 'split = "holdout"'), encoding="utf-8")
    assert main(["data", "build", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "systems.2.split" in err and err.count("\n") == 1
    assert main(["data", "probe", str(tmp_path / "none.tsv")]) == 2


def test_more_windows_per_recording_reuse_every_clip_made(shared_data_dir: Path, tmp_path: Path) -> None:
    # Raising the window count (coverage, max_per_clip) must keep every clip and id made before and
    # only add clips: a bigger build grows from a smaller one instead of starting over.
    config = load_config(TINY)
    small = config.model_copy(
        update={
            "real": [r.model_copy(update={"max_clips": 4}) for r in config.real],
            "systems": [s for s in config.systems if s.kind in ("espeak-ng", "flite")],
        }
    )
    first = build_dataset(small, output_dir=tmp_path, probe=False)
    before = {row["path"]: row for row in _rows(tmp_path)}
    windows = small.windows.model_copy(update={"coverage": 2.5, "max_per_clip": 5})
    second = build_dataset(small.model_copy(update={"windows": windows}), output_dir=tmp_path, probe=False)
    after = {row["path"]: row for row in _rows(tmp_path)}
    assert second.reused_items == len(before) and first.failed_items == second.failed_items == 0
    assert all(after[path] == row for path, row in before.items())
    for label in ("bonafide", "spoof"):
        assert sum(r["label"] == label for r in after.values()) > sum(r["label"] == label for r in before.values())


def test_an_optional_real_source_that_is_missing_is_skipped_with_a_warning(
    shared_data_dir: Path, tmp_path: Path
) -> None:
    config = load_config(TINY)
    prompts = RealSource(name="prompts", reader="folder", path=str(tmp_path / "absent"), split="train")
    optional = config.model_copy(update={"real": [*config.real, prompts.model_copy(update={"optional": True})]})
    builder = DatasetBuilder(optional, output_dir=tmp_path / "out", log=lambda line: None)
    recordings = builder.read_real()
    assert {real.source.name for real in recordings} == {source.name for source in config.real}
    assert builder.warnings == [f"real source 'prompts' skipped: {tmp_path / 'absent'} does not exist"]
    required = config.model_copy(update={"real": [*config.real, prompts]})
    with pytest.raises(CorpusError, match="absent: folder not found"):
        DatasetBuilder(required, output_dir=tmp_path / "out", log=lambda line: None).read_real()


def test_fakes_can_draw_real_recordings_by_seconds_of_speech_not_by_file_count(
    shared_data_dir: Path, tmp_path: Path
) -> None:
    # A corpus of many one-second prompts beside LibriSpeech's long readings: copies, clone
    # references and channels must come from each corpus in proportion to its speech.
    prompts = tmp_path / "prompts"
    prompts.mkdir()
    reading = sorted((shared_data_dir / "librispeech" / "test-other").rglob("*.flac"))[0]
    samples, rate_hz = sf.read(reading)
    for index in range(30):
        sf.write(prompts / f"prompt-{index:02d}.wav", samples[index * rate_hz : (index + 1) * rate_hz], rate_hz)
    config = load_config(TINY)
    source = RealSource(name="prompts", reader="folder", path=str(prompts), split="train")
    config = config.model_copy(update={"real": [*config.real, source]})
    by_file = DatasetBuilder(config, output_dir=tmp_path / "out", log=lambda line: None)
    assert all(chances is None for _, chances in by_file._donors(by_file.read_real()).values())  # each alike
    config = config.model_copy(update={"fake_sources_by": "seconds"})
    builder = DatasetBuilder(config, output_dir=tmp_path / "out", log=lambda line: None)
    recordings = builder.read_real()
    indices, chances = builder._donors(recordings)["train"]
    assert chances is not None
    from_prompts = [recordings[i].source.name == "prompts" for i in indices]
    assert sum(from_prompts) > len(indices) / 2  # most train files are prompts ...
    loaded = [builder.load_real(i, recordings) for i in indices]
    seconds = np.array([audio.duration_s if audio is not None else 0.0 for audio in loaded])  # None: unusable
    assert np.allclose(chances, seconds / seconds.sum())
    assert chances[from_prompts].sum() < 0.25  # ... but a small share of the speech
    # An unusable recording is warned about once, however often it is asked for.
    assert None in loaded and len(builder.warnings) == len(set(builder.warnings)) == loaded.count(None)


def test_another_real_pool_or_draw_remakes_the_fakes(tmp_path: Path) -> None:
    # Fakes copy, clone and take channels from the real recordings: the same clip id drawn from
    # another pool is another clip, so a resumed build must not reuse it.
    config = load_config(TINY)
    fewer = config.model_copy(update={"real": config.real[:1]})
    by_seconds = config.model_copy(update={"fake_sources_by": "seconds"})
    prints = [
        DatasetBuilder(c, output_dir=tmp_path, log=lambda line: None).fingerprints()
        for c in (config, fewer, by_seconds)
    ]
    for system in config.systems:
        assert len({p[system.name] for p in prints}) == 3, system.name
