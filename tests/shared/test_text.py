"""The clone-text rule (shared/text.py), and that the gateway and the cloner both apply it."""

from __future__ import annotations

import pytest
from fastapi import HTTPException

from services.cloner.config import ClonerSettings
from services.cloner.pipeline import CloneInputError, Cloner
from services.gateway.config import Settings
from services.gateway.service import CloneService
from shared.text import MAX_CLONE_TEXT_CHARS, CloneTextError, clone_text, collapse_whitespace

#: (text, the start of the message that refuses it) with a limit of 20 characters.
REFUSED = [
    ("", "`text` is empty"),
    (" \n\t ", "`text` is empty"),
    ("!!!", "`text` has no words to speak"),
    ("1234 5678 !!!", "`text` has no words to speak"),
    ("x" * 21, "`text` has 21 characters; the maximum is 20"),
]
#: (text, its normal form)
ACCEPTED = [
    ("Hello.", "Hello."),
    ("  Hello,\n\tworld!  ", "Hello, world!"),
    ("Ça va? 1 2 3", "Ça va? 1 2 3"),
    ("y" * 20, "y" * 20),
    ("日本語", "日本語"),
]


@pytest.mark.parametrize(("text", "message"), REFUSED)
def test_refused_texts_name_the_problem(text: str, message: str) -> None:
    with pytest.raises(CloneTextError) as raised:
        clone_text(text, max_chars=20)
    assert str(raised.value).startswith(message)
    assert isinstance(raised.value, ValueError)


@pytest.mark.parametrize(("text", "normal"), ACCEPTED)
def test_accepted_texts_are_normalised(text: str, normal: str) -> None:
    assert clone_text(text, max_chars=20) == normal
    assert clone_text(normal, max_chars=20) == normal  # idempotent


def test_limit_counts_the_normal_form_and_defaults_to_the_workers() -> None:
    assert clone_text("a" + " " * 50 + "b", max_chars=3) == "a b"
    assert clone_text("a" * MAX_CLONE_TEXT_CHARS) == "a" * MAX_CLONE_TEXT_CHARS
    with pytest.raises(CloneTextError, match="maximum is 2000"):
        clone_text("a" * (MAX_CLONE_TEXT_CHARS + 1))
    with pytest.raises(CloneTextError, match="must be a string"):
        clone_text(None)  # type: ignore[arg-type]
    assert collapse_whitespace(" a \r\n b ") == "a b"


def gateway_rule(text: str) -> str:
    """The gateway's check of POST /clone's `text` (422 with the rule's message)."""
    service = CloneService(Settings(max_text_chars=20), queue=None, celery=None, store=None)  # type: ignore[arg-type]
    try:
        return service.validate_text(text)
    except HTTPException as error:
        assert error.status_code == 422
        raise CloneTextError(error.detail) from None


def worker_rule(text: str) -> str:
    """The cloner's check in the worker (CloneInputError with the rule's message)."""
    cloner = Cloner(ClonerSettings(max_text_chars=20), encoder=None, backend=None)  # type: ignore[arg-type]
    try:
        return cloner.check_text(text)
    except CloneInputError as error:
        raise CloneTextError(str(error)) from None


@pytest.mark.parametrize("side", [gateway_rule, worker_rule], ids=["gateway", "worker"])
@pytest.mark.parametrize(("text", "message"), REFUSED)
def test_both_sides_refuse_the_same_texts(side, text: str, message: str) -> None:
    with pytest.raises(CloneTextError) as by_side:
        side(text)
    with pytest.raises(CloneTextError) as by_rule:
        clone_text(text, max_chars=20)
    assert str(by_side.value) == str(by_rule.value)
    assert str(by_side.value).startswith(message)


@pytest.mark.parametrize("side", [gateway_rule, worker_rule], ids=["gateway", "worker"])
@pytest.mark.parametrize(("text", "normal"), ACCEPTED)
def test_both_sides_accept_the_same_texts(side, text: str, normal: str) -> None:
    assert side(text) == normal
