"""scripts/apt_nonfree_sources.py: contrib/non-free lines from the machine's own apt sources."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "apt_nonfree_sources.py"
_spec = importlib.util.spec_from_file_location("apt_nonfree_sources", SCRIPT)
assert _spec and _spec.loader
apt_sources = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(apt_sources)


def _apt_dir(tmp_path: Path) -> Path:
    (tmp_path / "sources.list.d").mkdir(parents=True)
    return tmp_path


def test_deb822_and_one_line_sources_keep_mirror_and_suite(tmp_path: Path) -> None:
    apt_dir = _apt_dir(tmp_path)
    (apt_dir / "sources.list").write_text(
        "# comment\ndeb [arch=amd64] http://mirror.example/debian trixie main\ndeb-src http://x/debian trixie main\n"
    )
    (apt_dir / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.example/debian\nSuites: trixie trixie-updates\nComponents: main\n"
        "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n"
        "Types: deb\nURIs: http://other.example/node\nSuites: nodistro\nComponents: other\n"
    )
    (apt_dir / "sources.list.d" / "old.list.disabled").write_text("deb http://never.example/debian sid main\n")
    lines = apt_sources.nonfree_source_lines(apt_dir)
    assert lines == [
        "deb [arch=amd64] http://mirror.example/debian trixie main contrib non-free",
        "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://mirror.example/debian trixie "
        "main contrib non-free",
        "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://mirror.example/debian trixie-updates "
        "main contrib non-free",
    ]


def test_no_debian_source_is_an_error(tmp_path: Path) -> None:
    apt_dir = _apt_dir(tmp_path)
    (apt_dir / "sources.list.d" / "x.sources").write_text("Types: deb\nURIs: http://a/\nSuites: s\nComponents: other\n")
    result = subprocess.run([sys.executable, str(SCRIPT), str(apt_dir)], capture_output=True, text=True, check=False)
    assert result.returncode == 1
    assert "no Debian source with 'main'" in result.stderr
