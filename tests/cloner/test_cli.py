"""`vcfad clone` contract: single job and batch plan (real processes, real audio)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from services.cloner.cli import read_plan
from shared.audio import decode_audio
from vcfad.cli_common import CLIError

REPO = Path(__file__).resolve().parents[2]


def test_plan_parsing(tmp_path: Path) -> None:
    plan = tmp_path / "plan.tsv"
    plan.write_text("id\treference\ttext\na\tx.wav|/abs/y.flac\tHello.\nb\tsub/z.wav\tBye.\n", encoding="utf-8")
    rows = read_plan(plan)
    assert rows[0] == ("a", [tmp_path / "x.wav", Path("/abs/y.flac")], "Hello.")
    assert rows[1][1] == [tmp_path / "sub" / "z.wav"]
    plan.write_text("id\ttext\na\tHello.\n", encoding="utf-8")
    with pytest.raises(CLIError, match="reference"):
        read_plan(plan)
    plan.write_text("id\treference\ttext\na\tx.wav\tHi.\na\ty.wav\tHi.\n", encoding="utf-8")
    with pytest.raises(CLIError, match="twice"):
        read_plan(plan)


def _vcfad(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(Path(sys.executable).parent / "vcfad"), *args], cwd=REPO, capture_output=True, text=True, timeout=300,
        env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "VCFAD_CLONER_THREADS": "1"},
    )  # fmt: skip


@pytest.mark.slow
def test_clone_single_and_batch(tmp_path: Path, speaker_files: dict[str, list[Path]]) -> None:
    files = next(iter(speaker_files.values()))
    out = tmp_path / "one.wav"
    done = _vcfad("clone", "--reference", str(files[0]), "--text", "Good evening.", "--output", str(out),
                  "--backend", "piper", "--quiet")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert decode_audio(out).sample_rate_hz >= 16_000

    (tmp_path / "refs").mkdir()
    local = tmp_path / "refs" / "r.wav"
    local.write_bytes(files[3].read_bytes())
    plan = tmp_path / "plan.tsv"
    plan.write_text(
        "id\treference\ttext\n"
        f"long\t{files[1]}|{files[2]}\tThe second job reads this.\n"
        "rel\trefs/r.wav\tA relative reference.\n",
        encoding="utf-8",
    )
    done = _vcfad("clone", "--batch", str(plan), "--output-dir", str(tmp_path / "out"), "--backend", "piper")
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("loaded backend") == 1  # models loaded once for the whole plan
    for name in ("long", "rel"):
        assert decode_audio(tmp_path / "out" / f"{name}.wav").duration_s > 0.5

    done = _vcfad("clone", "--reference", str(tmp_path / "missing.wav"), "--text", "Hi.", "--output", str(out),
                  "--backend", "piper")  # fmt: skip
    assert done.returncode == 2 and "no such file" in done.stderr and "Traceback" not in done.stderr


def test_bad_environment_setting_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], librispeech_clip: Path, tmp_path: Path
) -> None:
    from vcfad.cli import main

    monkeypatch.setenv("VCFAD_CLONER_MATCH_CHANNEL", "maybe")
    args = ["clone", "--reference", str(librispeech_clip), "--text", "Hi.", "--output", str(tmp_path / "o.wav")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "match_channel" in err and "VCFAD_" in err and "Traceback" not in err and len(err.splitlines()) == 1
