"""Bad input to the detector's training and evaluation commands: one line, exit code 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from vcfad.cli import main


@pytest.mark.parametrize(
    ("manifest_text", "command", "message"),
    [
        ("path\tlabel\nx.wav\tmaybe\n", ["train-detector", "--out", "{tmp}/m"], "label must be 'bonafide' or 'spoof'"),
        ("path\tlabel\tsplit\nx.wav\tspoof\ttrain\n", ["train-detector", "--out", "{tmp}/m"], "needs both"),
        ("path\tlabel\tsplit\nx.wav\tspoof\ttrain\n", ["eval-detector", "--split", "test"], "no rows in split"),
        ("file\tclass\n", ["eval-detector"], "missing column"),
        ("path\tlabel\nx.wav\tspoof\n", ["eval-detector", "--scores-from", "{tmp}/none.tsv"], "no such file"),
    ],
)
def test_bad_manifest_is_one_line(tmp_path: Path, capsys, manifest_text: str, command: list[str], message: str):
    manifest = tmp_path / "manifest.tsv"
    manifest.write_text(manifest_text)
    argv = [part.format(tmp=tmp_path) for part in command] + ["--manifest", str(manifest)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "Traceback" not in err and len(err.splitlines()) == 1


def test_a_manifest_whose_clips_all_fail_is_an_error_not_an_empty_report(tmp_path: Path, capsys) -> None:
    """Relative paths are read from the manifest's folder: a manifest written with paths relative
    to somewhere else scores nothing, and says so (it once ended in a scikit-learn traceback)."""
    (tmp_path / "clips").mkdir()
    manifest = tmp_path / "clips" / "manifest.tsv"
    manifest.write_text("path\tlabel\nclips/a.wav\tbonafide\nclips/b.wav\tspoof\n")
    argv = ["eval-detector", "--model", "default", "--manifest", str(manifest), "--out", str(tmp_path / "report")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "none of the 2 clips could be scored by default" in err and "clips/clips/a.wav" in err, err
    assert not (tmp_path / "report").exists()


def test_set_threshold_leaves_no_copy_when_nothing_could_be_scored(tmp_path: Path, capsys) -> None:
    manifest = tmp_path / "manifest.tsv"
    manifest.write_text("path\tlabel\nmissing-a.wav\tbonafide\nmissing-b.wav\tspoof\n")
    copy = tmp_path / "site-copy"
    assert main(["set-threshold", "--model", "default", "--manifest", str(manifest), "--out", str(copy)]) == 2
    assert "none of the 2 clips could be scored" in capsys.readouterr().err
    assert not copy.exists()  # the copy is made before scoring; a failed run takes it away again


@pytest.mark.parametrize(
    ("manifest_text", "message"),
    [
        ("path\tlabel\tsplit\na.wav\tbonafide\ttrain\nb.wav\tspoof\ttrain\n", "no fake clip has a `family`"),
        ("path\tlabel\tsplit\tfamily\na.wav\tspoof\ttrain\tvocoder\nb.wav\tbonafide\tdev\t\n", "needs real and fake"),
        ("path\tlabel\tsplit\tfamily\na.wav\tspoof\ttrain\tvocoder\nb.wav\tbonafide\ttrain\t\n", "no real clips in"),
        (
            "path\tlabel\tsplit\tfamily\na.wav\tspoof\ttrain\tvocoder\nb.wav\tbonafide\ttrain\t\n"
            "c.wav\tbonafide\tdev\t\n",
            "every fake training clip is of family vocoder",
        ),
    ],
)
def test_eval_families_names_what_the_manifests_lack(tmp_path: Path, capsys, manifest_text: str, message: str) -> None:
    """Checked before any feature is computed: a manifest without families, without both classes
    in train or without held-out real clips is one line, not a numpy traceback."""
    manifest = tmp_path / "manifest.tsv"
    manifest.write_text(manifest_text)
    assert main(["eval-families", "--model", "default", "--manifest", str(manifest)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err, err


def test_quantize_with_a_manifest_that_scores_nothing_leaves_no_copy(tmp_path: Path, capsys) -> None:
    manifest = tmp_path / "manifest.tsv"
    manifest.write_text("path\tlabel\nmissing-a.wav\tbonafide\nmissing-b.wav\tspoof\n")
    copy = tmp_path / "int8"
    assert main(["quantize-detector", "--model", "default", "--out", str(copy), "--manifest", str(manifest)]) == 2
    err = capsys.readouterr().err
    assert "none of the 2 clips could be scored" in err and f"{copy} removed" in err, err
    assert not copy.exists()
