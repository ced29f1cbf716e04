"""`vcfad` sub-commands of the cloner."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add this package's sub-commands (filled in by the cloner work)."""
