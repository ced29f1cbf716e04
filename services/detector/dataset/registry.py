"""Which generator makes a fake system's clips: a registry from generator kind to factory.

The builder asks :func:`build_generator`. Built-in kinds are the classes of
:mod:`services.detector.dataset.generators`; other kinds are plugins, named by a
``"module:attribute"`` path and imported only when a build uses them, so the detector package
imports no other service. Plugins are found, in this order:

1. :func:`register` calls (tests, scripts);
2. the ``vcfad.fake_generators`` entry point group of installed distributions (name: the kind);
3. :data:`IN_REPO_PLUGINS`, the plugins of this repository (an editable install made before an
   entry point was added does not list it).

A factory takes the :class:`~services.detector.dataset.config.System` and returns the generator
(``speak``, ``copy`` or ``clone``); a plugin's failure to build makes the system unavailable.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

from services.detector.dataset.config import System
from services.detector.dataset.generators import COPY_KINDS, TEXT_KINDS, GeneratorUnavailableError

GeneratorFactory = Callable[[System], Any]

ENTRY_POINT_GROUP = "vcfad.fake_generators"
#: Generator kinds provided by other packages of this repository (also declared as entry points
#: in pyproject.toml).
IN_REPO_PLUGINS: dict[str, str] = {"cloner": "services.cloner.fake_generator:ClonerGenerator"}

_BUILT_IN: dict[str, GeneratorFactory] = {**TEXT_KINDS, **COPY_KINDS}
_registered: dict[str, GeneratorFactory] = {}


def register(kind: str, factory: GeneratorFactory) -> None:
    """Make ``factory`` build the generators of ``kind`` (replacing a plugin of that kind)."""
    _registered[kind] = factory


def plugin_path(kind: str) -> str | None:
    """The ``"module:attribute"`` of the plugin for ``kind``: an installed entry point, else the
    in-repo list; None if there is none."""
    for entry_point in entry_points(group=ENTRY_POINT_GROUP):
        if entry_point.name == kind:
            return entry_point.value
    return IN_REPO_PLUGINS.get(kind)


def load_factory(path: str) -> GeneratorFactory:
    """The object a ``"module:attribute"`` path names."""
    module_name, _, attribute = path.partition(":")
    return getattr(importlib.import_module(module_name), attribute)


def build_generator(system: System) -> Any:
    """The generator object for ``system`` (raises :class:`GeneratorUnavailableError`)."""
    if system.kind in _BUILT_IN:
        return _BUILT_IN[system.kind](system)
    factory = _registered.get(system.kind)
    if factory is None:
        path = plugin_path(system.kind)
        if path is None:
            raise GeneratorUnavailableError(f"no generator is registered for kind {system.kind!r}")
        try:
            factory = load_factory(path)
        except (ImportError, AttributeError) as error:
            raise GeneratorUnavailableError(f"the {system.kind!r} generator {path} cannot be loaded: {error}") from None
    try:
        return factory(system)
    except GeneratorUnavailableError:
        raise
    except Exception as error:  # any failure to build a plugin's generator makes the system unavailable
        raise GeneratorUnavailableError(str(error)) from None
