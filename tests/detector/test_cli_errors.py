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
