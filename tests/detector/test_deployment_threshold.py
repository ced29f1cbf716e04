"""Fitting the shipped model's threshold to a deployment's own genuine recordings (a folder)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from services.detector.evaluation.evaluate import evaluate
from services.detector.inference import Detector
from services.detector.model_files import default_model_dir
from vcfad.cli import main as vcfad_main


@pytest.fixture(scope="module")
def genuine_folder(shared_data_dir: Path) -> Path:
    """One LibriSpeech speaker's chapter: ten real recordings in nested folders, as a site has them."""
    return shared_data_dir / "librispeech" / "test-other" / "1688"


def test_false_alarms_bounded_on_a_folder_of_genuine_recordings_in_a_copy(genuine_folder: Path, tmp_path: Path):
    shipped = default_model_dir() / "model.json"
    shipped_before = shipped.read_bytes()
    site_model = tmp_path / "site-model"
    argv = ["set-threshold", "--model", "default", "--real-dir", str(genuine_folder)]
    assert vcfad_main([*argv, "--false-alarm-rate", "0.1", "--out", str(site_model)]) == 0

    assert shipped.read_bytes() == shipped_before  # the shipped files are never changed by --out
    spec = json.loads((site_model / "model.json").read_text())
    assert spec["training"]["copied_from"]["model"] == "default"
    assert not (site_model / "MODEL_CARD.md").exists()  # its figures are at the shipped threshold
    entry = spec["training"]["threshold_history"][-1]
    assert entry["rule"] == "false_alarm_rate<=0.1" and entry["real_dirs"] == [str(genuine_folder)]
    assert entry["clips"] == 10 and entry["manifests"] == []

    # The copy, scored on the same folder, calls at most one in ten of them fake, and the report
    # names the folder it read.
    [summary] = evaluate([Detector.from_model_dir(site_model)], [], tmp_path / "report", real_dirs=[genuine_folder])
    assert summary["overall"]["count"] == 10
    assert summary["overall"]["threshold"] == spec["threshold"]
    assert summary["overall"]["false_alarm_rate"] <= 0.1
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["real_dirs"] == [str(genuine_folder)]
    assert f"real recordings under `{genuine_folder}`" in (tmp_path / "report" / "report.md").read_text()


def test_folder_and_copy_errors_name_what_is_wrong(
    genuine_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    empty = tmp_path / "empty"
    (empty / "notes").mkdir(parents=True)
    (empty / "notes" / "readme.txt").write_text("no audio here")
    taken = tmp_path / "taken"
    taken.mkdir()
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    cases = [
        (["--real-dir", str(empty), "--false-alarm-rate", "0.1"], f"{empty}: no audio files"),
        (["--real-dir", str(tmp_path / "missing")], "no such folder of real recordings"),
        (["--false-alarm-rate", "0.1"], "nothing to score"),
        (["--real-dir", str(genuine_folder), "--split", "dev"], "only folders were given"),
        (["--real-dir", str(genuine_folder), "--false-alarm-rate", "0.1", "--out", str(taken)], "already exists"),
        (
            ["--real-dir", str(genuine_folder), "--false-alarm-rate", "0.1", "--out", str(a_file / "copy")],
            "cannot write the copy there",
        ),
    ]
    for extra, message in cases:
        assert vcfad_main(["set-threshold", "--model", "default", *extra]) == 2, extra
        assert message in capsys.readouterr().err, extra
    # A folder of real speech alone has no EER point: the error says to bound false alarms instead.
    eer_argv = ["set-threshold", "--model", "default", "--real-dir", str(genuine_folder), "--out", str(tmp_path / "x")]
    assert vcfad_main(eer_argv) == 2
    assert "use --false-alarm-rate" in capsys.readouterr().err
    assert list(taken.iterdir()) == [] and not (tmp_path / "x").exists()  # no copy is left by a refusal
