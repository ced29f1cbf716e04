"""`vcfad` sub-commands of the cloner: ``clone``, ``eval-clone``, ``models``.

Models load inside the handlers (each backend loads its own runtime on first use), so
``vcfad --help`` and argument errors stay fast.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
import time
from pathlib import Path

from services.cloner.backends import BACKENDS
from services.cloner.backends.kokoro_ge2e import DEFAULT_BANK, build_bank
from services.cloner.config import ClonerSettings
from services.cloner.evaluation import EvalConfig, compare_reports, run_evaluation
from services.cloner.pipeline import CloneInputError, Cloner
from services.cloner.sv2tts.download import download_sv2tts
from shared.tts.kokoro import fast_kokoro_model_path, pitch_graph_path
from vcfad.cli_common import CLIError, positive_int


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``clone``, ``eval-clone`` and ``models``."""
    clone = subparsers.add_parser(
        "clone",
        help="speak text in the voice of reference recordings",
        description=(
            "Clone a voice. One job: --reference A.wav [--reference B.wav ...] --text '...' --output out.wav. "
            "Many jobs: --batch PLAN.tsv --output-dir DIR, where PLAN has the columns id, reference, text; "
            "reference is one or more paths joined by '|', absolute or relative to the plan's folder."
        ),
    )
    clone.add_argument("--reference", action="append", type=Path, help="a reference recording (repeatable)")
    clone.add_argument("--text", help="the text to speak")
    clone.add_argument("--output", type=Path, help="output WAV (single job)")
    clone.add_argument("--batch", type=Path, help="a TSV plan with columns id, reference, text")
    clone.add_argument("--output-dir", type=Path, help="where a batch writes <id>.wav")
    clone.add_argument("--backend", choices=BACKENDS, help="synthesis backend (default: settings)")
    clone.add_argument(
        "--no-channel-match",
        action="store_true",
        help="keep the synthesizer's clean sound (default: the reference's long-term spectrum and room tone)",
    )
    clone.add_argument("--quiet", action="store_true", help="no progress lines")
    clone.set_defaults(handler=_clone)

    evaluate = subparsers.add_parser(
        "eval-clone",
        help="the four-technique cloning evaluation (WER + speaker similarity)",
        description="Short/long reference × short/long text on LibriSpeech test-other; writes Markdown + JSON.",
    )
    evaluate.add_argument("--data", type=Path, default=None, help="shared data folder (default ../shared/data)")
    evaluate.add_argument("--backend", action="append", choices=BACKENDS, help="backend(s) to evaluate")
    evaluate.add_argument("--asr-model", default="base", help="WER judge: base or tiny.en (offline)")
    evaluate.add_argument("--second-asr-model", default="tiny.en", help="second recogniser ('' = none)")
    evaluate.add_argument("--speakers", type=int, default=10, help="how many test-other speakers")
    evaluate.add_argument("--output", type=Path, default=Path("docs/clone-eval"), help="report path stem")
    evaluate.add_argument("--work-dir", type=Path, default=Path("var/clone-eval"), help="generated audio")
    evaluate.add_argument("--seed", type=int, default=0)
    evaluate.add_argument(
        "--no-ablation", action="store_true", help="skip the rows without the channel stage (default: scored too)"
    )
    evaluate.set_defaults(handler=_eval_clone)
    compare = subparsers.add_parser(
        "compare-clone-evals",
        help="change of GE2E, judge and WER between two eval-clone reports, with intervals over speakers",
    )
    compare.add_argument("before", type=Path, help="an eval-clone JSON report")
    compare.add_argument("after", type=Path, help="a later eval-clone JSON report (same speakers and texts)")
    compare.set_defaults(handler=_compare_clone_evals)

    models = subparsers.add_parser("models", help="download or build the cloner's model files")
    models_sub = models.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    download = models_sub.add_parser("download", help="fetch checkpoints (needs network)")
    download.add_argument("name", choices=["sv2tts"], help="sv2tts = RTVC encoder/synthesizer/vocoder")
    download.add_argument("--dest", type=Path, default=None, help="target folder (default: vcfad cache)")
    download.set_defaults(handler=_models_download)
    graph = models_sub.add_parser(
        "build-kokoro-graph",
        help="build Kokoro's fast (static int8) graph and its pitch-input copy into the cache now (an install step)",
    )
    graph.set_defaults(handler=_models_build_kokoro_graph)
    bank = models_sub.add_parser(
        "build-style-bank", help="(re)build the kokoro-ge2e style bank: GE2E + F0 of random styles (resumable)"
    )
    bank.add_argument("--out", type=Path, default=DEFAULT_BANK, help=f"bank file (default: {DEFAULT_BANK.name})")
    bank.add_argument("--count", type=positive_int, default=300, help="styles in the bank")
    bank.add_argument("--seed", type=int, default=0)
    bank.add_argument("--threads", type=positive_int, default=1)
    bank.set_defaults(handler=_models_build_style_bank)


def _settings(backend: str | None, match_channel: bool = True) -> ClonerSettings:
    settings = ClonerSettings()
    if backend:
        settings = settings.model_copy(update={"backend": backend})
    if not match_channel:
        settings = settings.model_copy(update={"match_channel": False})
    return settings


def _printer(quiet: bool):
    if quiet:
        return None
    last = [""]

    def report(fraction: float, stage: str) -> None:
        if stage != last[0]:
            last[0] = stage
            print(f"  [{fraction:4.0%}] {stage}", file=sys.stderr)

    return report


def read_plan(path: Path) -> list[tuple[str, list[Path], str]]:
    """Rows ``(id, reference paths, text)`` of a batch plan (paths resolved against its folder)."""
    if not path.is_file():
        raise CLIError(f"{path}: no such plan file")
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle, delimiter="\t")
        missing = {"id", "reference", "text"} - set(reader.fieldnames or [])
        if missing:
            raise CLIError(f"{path}: the plan lacks the column(s) {', '.join(sorted(missing))}")
        rows = []
        seen: set[str] = set()
        for line, row in enumerate(reader, start=2):
            job_id = (row["id"] or "").strip()
            if not job_id or "/" in job_id or job_id in {".", ".."}:
                raise CLIError(f"{path}:{line}: bad id {job_id!r}")
            if job_id in seen:
                raise CLIError(f"{path}:{line}: the id {job_id!r} appears twice")
            seen.add(job_id)
            references = [
                p if p.is_absolute() else path.parent / p
                for p in (Path(part.strip()) for part in (row["reference"] or "").split("|") if part.strip())
            ]
            if not references:
                raise CLIError(f"{path}:{line}: no reference path")
            rows.append((job_id, references, row["text"] or ""))
    return rows


def _clone(args: argparse.Namespace) -> int:
    single = args.reference or args.text is not None or args.output
    if args.batch and single:
        raise CLIError("use either --batch/--output-dir or --reference/--text/--output, not both")
    if args.batch:
        if not args.output_dir:
            raise CLIError("--batch needs --output-dir")
        plan = read_plan(args.batch)
    else:
        if not args.reference or args.text is None or not args.output:
            raise CLIError("a single clone needs --reference, --text and --output (or use --batch)")
        plan = [("", list(args.reference), args.text)]
        # Cheap checks before the models load (seconds): a typo should fail at once.
        for reference in args.reference:
            if not reference.is_file():
                raise CLIError(f"{reference}: no such file")
        if not args.text.strip():
            raise CLIError("the text is empty; give the sentence(s) to speak")

    started = time.perf_counter()
    cloner = Cloner.from_settings(_settings(args.backend, match_channel=not args.no_channel_match))
    print(f"loaded backend {cloner.backend_name} in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    failures = 0
    for job_id, references, text in plan:
        output = args.output if not args.batch else args.output_dir / f"{job_id}.wav"
        started = time.perf_counter()
        try:
            audio = cloner.clone([str(r) for r in references], text, progress=_printer(args.quiet))
        except CloneInputError as error:
            if not args.batch:
                raise CLIError(str(error)) from None
            print(f"{job_id}: error: {error}", file=sys.stderr)
            failures += 1
            continue
        except ValueError as error:  # AudioError included
            if not args.batch:
                raise
            print(f"{job_id}: error: {error}", file=sys.stderr)
            failures += 1
            continue
        audio.write(output)
        elapsed = time.perf_counter() - started
        print(f"{output}: {audio.duration_s:.2f} s of speech in {elapsed:.1f} s", file=sys.stderr)
    if failures:
        print(f"{failures} of {len(plan)} job(s) failed", file=sys.stderr)
        return 1
    return 0


def _eval_clone(args: argparse.Namespace) -> int:
    config = EvalConfig(
        data_dir=args.data,
        backends=tuple(args.backend or ("kokoro-ge2e", "piper")),
        asr_model=args.asr_model,
        second_asr_model=args.second_asr_model or None,
        speakers=args.speakers,
        output_stem=args.output,
        work_dir=args.work_dir,
        seed=args.seed,
        channel_ablation=not args.no_ablation,
    )
    run_evaluation(config)
    return 0


def _models_download(args: argparse.Namespace) -> int:
    paths = download_sv2tts(args.dest)
    for path in paths:
        print(path)
    return 0


def _models_build_kokoro_graph(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    fast = fast_kokoro_model_path()
    print(fast)
    print(pitch_graph_path(fast))  # its copy with the pitch input, which the engines open
    return 0


def _models_build_style_bank(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s")
    print(build_bank(args.out, args.count, args.seed, args.threads))
    return 0


def _compare_clone_evals(args: argparse.Namespace) -> int:
    reports = []
    for path in (args.before, args.after):
        try:
            reports.append(json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError) as error:
            raise CLIError(f"{path}: not a readable eval-clone report ({error})") from None
    rows = compare_reports(*reports)
    if not rows:
        raise CLIError("the two reports share no clone (same backend, speaker, reference and text)")
    print("| backend | measure | speakers | before | after | change | 95 % interval (speakers) |")
    print("|---|---|---:|---:|---:|---:|---|")
    for row in rows:
        low, high = row["interval_95"]
        print(
            f"| {row['backend']} | {row['measure']} | {row['speakers']} | {row['before']:.3f} | {row['after']:.3f} | "
            f"{row['change']:+.3f} | [{low:+.3f}, {high:+.3f}] |"
        )
    return 0
