"""`vcfad data vocoder ...`: train, evaluate and try the copy-synthesis vocoders of the data builder.

``train`` (a small vocoder on librispeech/train-clean-100), ``evaluate`` (held-out spectral
distances and ASR WER), ``copy`` (one file) and ``fit-window`` (a pretrained checkpoint's
undocumented analysis window). docs/dataset.md has the runs behind the shipped vocoders.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
from collections.abc import Callable
from pathlib import Path

from services.detector.dataset.copy_synthesis import DEFAULT_SHARED_DATA, CopySynthesizer
from services.detector.dataset.neural_vocoder import (
    GriffinLimCopy,
    NeuralVocoder,
    TrainSettings,
    evaluate_vocoder,
    heldout_files,
    load_training_clips,
    train_vocoder,
)
from services.detector.dataset.pretrained_vocoder import PRETRAINED, PretrainedVocoderUnavailableError, fit_window
from services.detector.dataset.vocoders import load_copy_synthesizer
from shared.audio import LoadPolicy, load_audio
from vcfad.cli_common import CLIError, positive_int

MODEL_HELP = "a vocoder folder, or a pretrained one: hifigan-v1-universal, hifigan-v1-LJSpeech, hifigan-ts-16k"


def register(data_commands: argparse._SubParsersAction) -> None:
    """Add ``vcfad data vocoder train|evaluate|copy|fit-window``."""
    vocoder = data_commands.add_parser("vocoder", help="train, evaluate and try the copy-synthesis vocoders")
    vocoder_commands = vocoder.add_subparsers(dest="vocoder_command", required=True, metavar="VOCODER_COMMAND")
    train = vocoder_commands.add_parser("train", help="train a vocoder on librispeech/train-clean-100")
    train.add_argument("--arch", choices=("hifigan", "vocos"), default="hifigan")
    train.add_argument("--out", required=True, help="output folder, e.g. models/vocoder/vocos-s")
    train.add_argument("--name", help="vocoder name (default: the output folder's name)")
    train.add_argument("--minutes", type=float, default=25.0, help="wall-clock training budget")
    train.add_argument("--max-steps", type=int)
    train.add_argument("--batch", type=int)
    train.add_argument("--segment-s", type=float)
    train.add_argument("--lr", type=float)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--threads", type=int, default=1)
    train.add_argument("--data", default=str(DEFAULT_SHARED_DATA), help="the shared data folder")
    train.set_defaults(handler=_train_command)
    evaluate = vocoder_commands.add_parser(
        "evaluate", help="held-out spectral distances and ASR WER (test-other clips)"
    )
    evaluate.add_argument("model", help=MODEL_HELP)
    evaluate.add_argument("--per-speaker", type=int, default=2)
    evaluate.add_argument("--max-clips", type=int, help="evaluate only the first N held-out clips")
    evaluate.add_argument("--no-asr", action="store_true")
    evaluate.add_argument(
        "--baseline",
        choices=("griffin-lim", "source-filter-prior"),
        help="evaluate a reference instead: Griffin-Lim on the model's log-mel, or the HiFi-GAN's DSP prior alone",
    )
    evaluate.add_argument("--write", help="folder for the copies (WAV)")
    evaluate.add_argument("--json", help="write the summary here")
    evaluate.add_argument("--threads", type=int, default=1)
    evaluate.add_argument("--data", default=str(DEFAULT_SHARED_DATA))
    evaluate.set_defaults(handler=_evaluate_command)
    copy = vocoder_commands.add_parser("copy", help="copy-synthesise one file")
    copy.add_argument("model", help=MODEL_HELP)
    copy.add_argument("input")
    copy.add_argument("output")
    copy.add_argument("--threads", type=int, default=1)
    copy.set_defaults(handler=_copy_command)
    fit = vocoder_commands.add_parser("fit-window", help="rank analysis windows by copy error on training speech")
    fit.add_argument("name", choices=PRETRAINED)
    fit.add_argument(
        "--clips", type=positive_int, default=12, help="first N librispeech/train-clean-100 clips (3 s each)"
    )
    fit.add_argument("--data", type=Path, default=DEFAULT_SHARED_DATA, help="the shared data folder")
    fit.set_defaults(handler=_fit_window_command)


def _user_errors(handler: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """A command whose ValueError (a bad model, name or setting) is a one-line user error, exit 2."""

    @functools.wraps(handler)
    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except ValueError as error:
            raise CLIError(str(error)) from None

    return run


def _load(model: str, threads: int) -> CopySynthesizer:
    return load_copy_synthesizer(model, threads=threads)


@_user_errors
def _train_command(args: argparse.Namespace) -> int:
    # Torch and the vocoder networks load only when a vocoder command runs.
    from services.detector.dataset.neural_vocoder_nets import VocoderConfig

    out = Path(args.out)
    config = VocoderConfig(name=args.name or out.name, arch=args.arch)
    if args.arch == "vocos":
        defaults = {"batch": 16, "segment_s": 1.0, "lr": 1e-3}
    else:
        defaults = {"batch": 8, "segment_s": 0.5, "lr": 5e-4}
    settings = TrainSettings(
        minutes=args.minutes,
        max_steps=args.max_steps,
        threads=args.threads,
        seed=args.seed,
        batch_size=args.batch or defaults["batch"],
        segment_s=args.segment_s or defaults["segment_s"],
        learning_rate=args.lr or defaults["lr"],
    )
    clips = load_training_clips(Path(args.data))
    train_vocoder(config, clips, out, settings, log=lambda line: print(line, flush=True))
    return 0


@_user_errors
def _evaluate_command(args: argparse.Namespace) -> int:
    loaded = _load(args.model, args.threads)
    vocoder: CopySynthesizer = loaded
    if args.baseline:
        if not isinstance(loaded, NeuralVocoder):
            raise CLIError(f"--baseline needs a trained vocoder folder, not {args.model}")
        if args.baseline == "griffin-lim":
            vocoder = GriffinLimCopy(loaded.config)
        else:  # source-filter-prior
            # Torch and the vocoder networks load only when a vocoder command runs.
            from services.detector.dataset.neural_vocoder_nets import build_generator, needs_f0

            if not needs_f0(loaded.config):
                raise CLIError(f"{args.model} has no source-filter prior (only HiFi-GAN with nsf_harmonics > 0)")
            # An untrained generator of the same config outputs exactly its prior (zero-initialised residual).
            config = dataclasses.replace(loaded.config, name="source-filter-prior")
            vocoder = NeuralVocoder(config, build_generator(config))
    files = heldout_files(Path(args.data), per_speaker=args.per_speaker)[: args.max_clips]
    summary = evaluate_vocoder(
        vocoder,
        files,
        asr=not args.no_asr,
        out_dir=Path(args.write) if args.write else None,
        asr_threads=args.threads,
        log=lambda line: print(line, flush=True),
    )
    print(json.dumps(summary, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=1) + "\n")
    return 0


@_user_errors
def _copy_command(args: argparse.Namespace) -> int:
    vocoder = _load(args.model, args.threads)
    vocoder.copy_synthesize(load_audio(args.input, LoadPolicy(trim_silence=False, normalize_loudness=False))).write(
        args.output
    )
    return 0


@_user_errors
def _fit_window_command(args: argparse.Namespace) -> int:
    """Print the window ranking of :func:`fit_window` as JSON."""
    files = sorted((args.data / "librispeech" / "train-clean-100").rglob("*.flac"))[: args.clips]
    if not files:
        raise CLIError(f"no train-clean-100 clips under {args.data}")
    try:
        ranking = fit_window(args.name, [load_audio(path).crop(0.0, 3.0) for path in files])
    except (PretrainedVocoderUnavailableError, ValueError) as error:
        raise CLIError(str(error)) from None
    print(json.dumps({"vocoder": args.name, "clips": len(files), "mel_l1_by_window": dict(ranking)}, indent=1))
    return 0
