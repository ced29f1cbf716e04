"""The clone-text rule: which text a cloning job may speak, and its normal form.

One function, :func:`clone_text`, validates and normalises; the gateway applies it to
``POST /clone`` (a refusal is a 422 at once) and the cloner applies it again in the worker (and
the CLI), so the two sides cannot disagree. Its messages name the form field, ``text``.
"""

from __future__ import annotations

#: The longest clone text, in characters, after whitespace is collapsed: the cloner's default
#: limit (``VCFAD_CLONER_MAX_TEXT_CHARS``) and the most the gateway may be configured to accept.
MAX_CLONE_TEXT_CHARS = 2_000


class CloneTextError(ValueError):
    """Text a cloning job cannot speak; the message says what is wrong with it."""


def collapse_whitespace(text: str) -> str:
    """``text`` with runs of whitespace (newlines, tabs) made one space, and no space at the ends."""
    return " ".join(text.split())


def clone_text(text: str, max_chars: int = MAX_CLONE_TEXT_CHARS) -> str:
    """The normal form of ``text`` (whitespace collapsed) if a cloning job may speak it.

    Raises
    ------
    CloneTextError
        Not a string, empty, longer than ``max_chars`` characters, or without a single letter
        (``"!!!"``, ``"1234"``: nothing a voice could say).
    """
    if not isinstance(text, str):
        raise CloneTextError(f"`text` must be a string, not {type(text).__name__}")
    text = collapse_whitespace(text)
    if not text:
        raise CloneTextError("`text` is empty: give the sentence(s) the cloned voice should say")
    if len(text) > max_chars:
        raise CloneTextError(f"`text` has {len(text)} characters; the maximum is {max_chars}")
    if not any(character.isalpha() for character in text):
        raise CloneTextError(f"`text` has no words to speak (no letters in {text[:40]!r})")
    return text
