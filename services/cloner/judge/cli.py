"""`vcfad judge ...`: train the speaker judge, or score two recordings with it."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
from pathlib import Path

from services.cloner.judge.score import DEFAULT_JUDGE_DIR, JudgeModelError, SpeakerJudge
from shared.audio import decode_audio
from shared.sources import SourceError
from vcfad.cli_common import CLIError, positive_int


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``judge train`` and ``judge similarity``."""
    judge = subparsers.add_parser("judge", help="the speaker judge of eval-clone (a model independent of GE2E)")
    actions = judge.add_subparsers(dest="judge_command", required=True, metavar="ACTION")
    train = actions.add_parser(
        "train",
        help="train the judge on catalogue speakers, export it to ONNX and report its EER on unseen speakers",
        description="Needs the snapshots of the recipe's sources (docs/cloning.md, 'The speaker judge').",
    )
    train.add_argument("--output", type=Path, default=DEFAULT_JUDGE_DIR, help="model folder (default models/judge)")
    train.add_argument("--epochs", type=positive_int, default=None, help="training epochs (default: the recipe's)")
    train.add_argument("--threads", type=positive_int, default=None, help="torch threads (default: the recipe's)")
    train.set_defaults(handler=_train)
    similarity = actions.add_parser("similarity", help="the judge's cosine similarity of two recordings")
    similarity.add_argument("first", type=Path)
    similarity.add_argument("second", type=Path)
    similarity.add_argument("--model", type=Path, default=DEFAULT_JUDGE_DIR, help="judge model folder")
    similarity.set_defaults(handler=_similarity)


def _train(args: argparse.Namespace) -> int:
    # local import: torch loads only when a judge is trained, not for `vcfad --help`
    from services.cloner.judge.train import JudgeRecipe, build_judge

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    recipe = JudgeRecipe()
    overrides = {"epochs": args.epochs, "threads": args.threads}
    recipe = dataclasses.replace(recipe, **{k: v for k, v in overrides.items() if v is not None})
    try:
        settings = build_judge(recipe, args.output)
    except SourceError as error:
        raise CLIError(str(error)) from None
    print(json.dumps({"training": settings["training"], "verification": settings["verification"]}, indent=2))
    return 0


def _similarity(args: argparse.Namespace) -> int:
    try:
        judge = SpeakerJudge(args.model)
    except JudgeModelError as error:
        raise CLIError(str(error)) from None
    print(f"{judge.similarity(decode_audio(args.first), decode_audio(args.second)):.4f}")
    return 0
