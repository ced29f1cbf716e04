"""Fake generators reach the data builder through the registry; the detector does not import the cloner."""

from __future__ import annotations

import ast
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from services.detector.dataset import registry
from services.detector.dataset.config import System
from services.detector.dataset.generators import GeneratorUnavailableError

DETECTOR_DIR = Path(__file__).resolve().parents[3] / "services" / "detector"


class _Echo:
    def __init__(self, system: System) -> None:
        self.system = system.name


def test_a_registered_factory_builds_its_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_registered", {})
    registry.register("cloner", _Echo)
    generator = registry.build_generator(System(name="mine", kind="cloner", split="test"))
    assert isinstance(generator, _Echo) and generator.system == "mine"


def test_the_cloner_plugin_is_found_by_path_without_building_it() -> None:
    path = registry.plugin_path("cloner")
    assert path == "services.cloner.fake_generator:ClonerGenerator"
    assert registry.load_factory(path).__name__ == "ClonerGenerator"


def test_an_entry_point_wins_over_the_in_repo_list(monkeypatch: pytest.MonkeyPatch) -> None:
    entry = EntryPoint(name="cloner", value="tests.elsewhere:Cloner", group=registry.ENTRY_POINT_GROUP)
    monkeypatch.setattr(registry, "entry_points", lambda group: [entry] if group == registry.ENTRY_POINT_GROUP else [])
    assert registry.plugin_path("cloner") == "tests.elsewhere:Cloner"


def test_a_plugin_that_fails_makes_its_system_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(system: System) -> object:
        raise RuntimeError("the vcfad cloner is unavailable: no weights")

    monkeypatch.setattr(registry, "_registered", {"cloner": broken})
    with pytest.raises(GeneratorUnavailableError, match="no weights"):
        registry.build_generator(System(name="c", kind="cloner", split="test"))
    monkeypatch.setattr(registry, "_registered", {})
    monkeypatch.setattr(registry, "IN_REPO_PLUGINS", {"cloner": "no_such_module:Thing"})
    monkeypatch.setattr(registry, "entry_points", lambda group: [])
    with pytest.raises(GeneratorUnavailableError, match="cannot be loaded"):
        registry.build_generator(System(name="c", kind="cloner", split="test"))


def test_the_detector_package_imports_no_cloner() -> None:
    importers = []
    for path in DETECTOR_DIR.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            names += [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            if any(name == "services.cloner" or name.startswith("services.cloner.") for name in names):
                importers.append(str(path.relative_to(DETECTOR_DIR)))
    assert importers == []
