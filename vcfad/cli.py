"""The ``vcfad`` command line.

Each domain package owns its sub-commands in its own ``cli.py`` with a ``register(subparsers)``
function; this module only collects them. Those modules import heavy libraries inside their
handlers, so ``vcfad --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from pydantic import ValidationError

from services.detector.model_files import ModelFileError
from services.detector.training.manifest import ManifestError
from shared.audio import AudioError
from vcfad.cli_common import CLIError

#: Modules that add sub-commands; each has ``register(subparsers: argparse._SubParsersAction)``.
COMMAND_MODULES = (
    "services.detector.cli",
    "services.detector.dataset.cli",
    "services.cloner.cli",
    "services.cloner.judge.cli",
    "vcfad.serve",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vcfad", description="Voice cloning and fake-audio detection.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except (CLIError, AudioError, ManifestError, ModelFileError, FileNotFoundError) as error:
        print(f"vcfad {args.command}: error: {error}", file=sys.stderr)
        return 2
    except ValidationError as error:  # a VCFAD_* environment setting that does not parse
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        print(f"vcfad {args.command}: error: invalid {error.title} (VCFAD_* environment): {problems}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
