"""Pieces every ``cli.py`` shares: the user-error type and argument types.

A leaf module (it imports nothing of the project), so the domain packages' ``cli.py`` modules and
``vcfad.cli``, which collects them, can all import it without a cycle.
"""

from __future__ import annotations

import argparse


class CLIError(Exception):
    """A user error: printed as one line, exit code 2."""


def positive_int(text: str) -> int:
    """argparse type for counts: a whole number ≥ 1 (a usage error, exit code 2, otherwise)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value
