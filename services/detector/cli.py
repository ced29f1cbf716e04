"""`vcfad detect`, `train-detector`, `eval-detector`, `set-threshold`, `set-input-floor`, `quantize-detector`."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path

from services.detector.model_files import (
    GRAPH_KINDS,
    POOLINGS,
    ModelSpec,
    check_input_floor,
    default_model_dir,
    removed_on_failure,
)
from services.detector.training.manifest import ManifestError
from shared.audio import AudioError
from shared.watermark import Watermarker, WatermarkKeyError
from vcfad.cli_common import CLIError, positive_int


def resolve_model(name_or_dir: str) -> Path:
    """A shipped model name (``default``, ``seed-baseline``) or a model folder."""
    candidate = Path(name_or_dir)
    if (candidate / "model.json").is_file():
        return candidate
    shipped = default_model_dir(name_or_dir)
    if (shipped / "model.json").is_file():
        return shipped
    raise FileNotFoundError(f"--model {name_or_dir!r}: neither a shipped model name nor a model folder")


def _add_clip_sources(parser: argparse.ArgumentParser, real_dir_help: str) -> None:
    """``--manifest`` and ``--real-dir``, both repeatable; at least one is needed (checked when the rows are read)."""
    parser.add_argument("--manifest", type=Path, action="append", default=[], help="manifest TSV; repeatable")
    parser.add_argument("--real-dir", type=Path, action="append", default=[], help=f"{real_dir_help}; repeatable")


def register(subparsers: argparse._SubParsersAction) -> None:
    detect = subparsers.add_parser(
        "detect",
        help="score recordings: probability that each is synthetic",
        description="Score recordings with the fake-audio detector. Models are loaded once for all paths.",
    )
    detect.add_argument("paths", nargs="+", metavar="PATH", help="audio files (WAV, FLAC, MP3, OGG)")
    detect.add_argument("--json", action="store_true", help="one JSON object per input and line")
    detect.add_argument("--timeline", action="store_true", help="also score 2 s windows every 0.5 s")
    detect.add_argument("--model", default="default", help="shipped model name or model folder (default: default)")
    detect.add_argument("--threads", type=int, default=2, help="ONNX Runtime threads (default 2)")
    detect.add_argument("--no-watermark", action="store_true", help="do not read the vcfad watermark")
    detect.set_defaults(handler=_detect)

    graph = subparsers.add_parser(
        "build-detector-graph",
        help="assemble a whisper-probe model's ONNX graph into the cache now (install step; the service "
        "does it on a model's first use)",
    )
    graph.add_argument("--model", default="default", help="shipped model name or model folder (default: default)")
    graph.set_defaults(handler=_build_graph)

    train = subparsers.add_parser("train-detector", help="train a detector model from a dataset manifest")
    train.add_argument(
        "--manifest",
        required=True,
        type=Path,
        action="append",
        help="manifest.tsv from `vcfad data build`; repeat to pool several builds",
    )
    train.add_argument(
        "--kind",
        choices=("whisper-probe", "whisper-frames", "seed-baseline"),
        default="whisper-probe",
        help="whisper-probe: logistic regression over pooled encoder blocks; whisper-frames: a small network "
        "over the encoder's frames (docs/detector.md); seed-baseline: the reference recipe",
    )
    train.add_argument(
        "--epochs",
        type=positive_int,
        help="whisper-frames: training epochs (default 6; the epoch with the lowest dev EER is kept)",
    )
    train.add_argument("--out", required=True, type=Path, help="model folder to write")
    train.add_argument("--name", help="model name (default: the folder's name)")
    train.add_argument(
        "--refit",
        action="store_true",
        help="learn from the train and test splits; dev stays out as the calibration share the choices and "
        "the threshold come from (for the shipped model, after the recipe was chosen on dev: docs/detector.md)",
    )
    train.add_argument(
        "--channel-normalisation",
        action="store_true",
        help="whisper-probe: remove each clip's long-term spectrum before the encoder (docs/detector.md)",
    )
    train.add_argument(
        "--pooling",
        choices=POOLINGS,
        help="whisper-probe: statistics per encoder block (default mean-std; mean-std-delta adds the "
        "frame-to-frame change, docs/detector.md)",
    )
    train.add_argument(
        "--blocks",
        type=_block_list,
        help="whisper-probe: encoder blocks whose subsets are searched on dev, e.g. 0,1,2,3,4 "
        "(0 = the encoder's front end; default 1,2,3,4); whisper-frames: the blocks it reads (default 1,2,3)",
    )
    train.add_argument(
        "--ensemble",
        type=positive_int,
        help="whisper-probe: average the logits of the N layer sets with the lowest dev EER, each at "
        "its best C (one head over their layers; docs/detector.md). Default 1: the best layer set",
    )
    train.add_argument(
        "--onnx-features",
        action="store_true",
        help="whisper-probe: compute the encoder features through ONNX Runtime (several times faster on a "
        "CPU; equal to the torch features within 1e-4; not with --channel-normalisation)",
    )
    train.add_argument(
        "--exclude-family",
        action="append",
        default=[],
        metavar="FAMILY",
        help="whisper-probe: leave this fake family (the manifest's family column) out of train and dev: "
        "a leave-one-family-out model; repeatable",
    )
    train.set_defaults(handler=_train)

    evaluate = subparsers.add_parser(
        "eval-detector", help="EER, F1, false alarms, per-system EER and a DET curve on a manifest"
    )
    _add_clip_sources(evaluate, "a folder of genuine recordings, every audio file under it scored as real")
    evaluate.add_argument(
        "--model", action="append", help="model name or folder; repeat to compare (default: seed-baseline and default)"
    )
    evaluate.add_argument("--split", help="evaluate only this split of the manifest (e.g. test)")
    evaluate.add_argument(
        "--without-step",
        action="append",
        default=[],
        metavar="STEP",
        help="leave out the built clips whose augment column holds this channel step (e.g. gate); repeatable",
    )
    evaluate.add_argument(
        "--scores-from",
        type=Path,
        metavar="SCORES_TSV",
        help="take each model's scores from an earlier report's scores.tsv instead of running it "
        "(to slice an evaluation again; run from the folder that report was written in)",
    )
    evaluate.add_argument("--out", type=Path, help="folder for report.json, report.md and det.png")
    evaluate.add_argument("--threads", type=int, default=2)
    evaluate.set_defaults(handler=_evaluate)

    families = subparsers.add_parser(
        "eval-families",
        help="leave-one-family-out: refit a model's recipe without each fake family, EER on that family",
        description="For each fake family of the manifests, refit the model's layers and C on the train split "
        "without it and score the family's clips (all splits) against the dev and test real clips.",
    )
    families.add_argument("--manifest", required=True, type=Path, action="append", help="manifest TSV; repeatable")
    families.add_argument("--model", required=True, help="a whisper-probe model folder trained on those manifests")
    families.add_argument("--family", action="append", default=None, help="only this family (repeatable)")
    families.add_argument("--torch-features", action="store_true", help="torch features (the model's default: onnx)")
    families.add_argument("--out", type=Path, default=None, help="write families.md and families.json here")
    families.set_defaults(handler=_eval_families)

    threshold = subparsers.add_parser(
        "set-threshold",
        help="set a model's operating threshold from its scores on a manifest (never a test set)",
        description="Write the EER point (default) or a bounded false-alarm rate on real clips into model.json. "
        "To fit a deployment: --real-dir YOUR_GENUINE_RECORDINGS --false-alarm-rate 0.05 --out NEW_FOLDER, then "
        "serve NEW_FOLDER (VCFAD_DETECTOR_MODEL_DIR).",
    )
    threshold.add_argument("--model", required=True, help="model folder (or shipped model name) to update")
    _add_clip_sources(
        threshold,
        "a folder of your own genuine recordings, every audio file under it real (use with "
        "--false-alarm-rate to bound false alarms on your traffic)",
    )
    threshold.add_argument(
        "--out",
        type=Path,
        help="copy the model to this new folder and set the copy's threshold (the shipped files stay as they are)",
    )
    threshold.add_argument("--split", help="use only this split of the manifest (e.g. dev)")
    threshold.add_argument(
        "--false-alarm-rate",
        type=_rate,
        help="call at most this share (0-1) of the real clips fake, instead of the EER point",
    )
    threshold.add_argument("--threads", type=int, default=2)
    threshold.set_defaults(handler=_set_threshold)

    floor = subparsers.add_parser(
        "set-input-floor",
        help="raise every input's noise floor to a level before scoring (or --off)",
        description="Write into model.json the noise floor (dBFS) each clip is raised to before it is "
        "scored, as training's augmentation raised every training clip's. Set the threshold again after.",
    )
    floor.add_argument("--model", required=True, help="model folder (or shipped model name) to update")
    level = floor.add_mutually_exclusive_group(required=True)
    level.add_argument("--dbfs", type=float, help="the floor level, e.g. -49")
    level.add_argument("--off", action="store_true", help="score input as given")
    floor.set_defaults(handler=_set_input_floor)

    quantize = subparsers.add_parser(
        "quantize-detector",
        help="copy a whisper-probe model with int8 MatMuls (faster on CPU; scores move a little)",
        description="Copy a whisper-probe model folder, serving its graph with dynamically quantized "
        "int8 MatMuls. With --manifest, its threshold is set again at its own EER point there (use dev).",
    )
    quantize.add_argument("--model", required=True, help="model folder (or shipped model name) to copy")
    quantize.add_argument("--out", required=True, type=Path, help="new model folder (must not exist)")
    quantize.add_argument("--name", help="the copy's model name (default: the model's name + '-int8')")
    quantize.add_argument(
        "--manifest", type=Path, action="append", help="set the copy's threshold on this manifest; repeatable"
    )
    quantize.add_argument("--split", help="use only this split of the manifest (e.g. dev)")
    quantize.add_argument(
        "--per-channel",
        action="store_true",
        help="one weight scale per output channel (precision int8-matmul-channel; closer to the float "
        "model at the same speed) instead of one per tensor",
    )
    quantize.add_argument("--threads", type=int, default=2)
    quantize.set_defaults(handler=_quantize)


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"a share between 0 and 1, not {value}")
    return value


def _detect(args: argparse.Namespace) -> int:
    # Imported when the command runs (ONNX Runtime, librosa), so `vcfad --help` stays fast.
    from services.detector.inference import Detector

    watermarker = None
    if not args.no_watermark:
        try:
            watermarker = Watermarker.from_settings()
        except WatermarkKeyError as error:
            raise CLIError(str(error)) from None
    detector = Detector.from_model_dir(resolve_model(args.model), threads=args.threads, watermarker=watermarker)
    failures = 0
    for path in args.paths:
        try:
            detection = detector.detect(path, timeline=args.timeline)
        except AudioError as error:
            failures += 1
            if args.json:
                print(json.dumps({"path": path, "error": str(error)}), flush=True)
            else:
                print(f"{path}\terror: {error}", file=sys.stderr, flush=True)
            continue
        if args.json:
            record: dict[str, object] = {"path": path, "score": round(detection.score, 6), "label": detection.label}
            if detection.watermark is not None:
                record["watermark"] = detection.watermark.model_dump()
            if detection.reason is not None:
                record["reason"] = detection.reason
            if detection.timeline is not None:
                record["timeline"] = [
                    {"start_s": w.start_s, "end_s": w.end_s, "score": round(w.score, 6)} for w in detection.timeline
                ]
            print(json.dumps(record), flush=True)
            continue
        print(f"{path}\t{detection.label}\tscore {detection.score:.3f} (threshold {detection.threshold:.3f})")
        if detection.reason is not None:
            print(f"  {detection.reason}")
        for window in detection.timeline or []:
            bar = "#" * round(window.score * 40)
            print(f"  {window.start_s:7.2f}–{window.end_s:7.2f} s  {window.score:.3f}  {bar}")
    return 1 if failures else 0


#: Whisper-base's encoder has six blocks; the front end is hidden state 0.
MAX_BLOCK = 6


def _block_list(text: str) -> tuple[int, ...]:
    """argparse type for ``--blocks``: comma-separated distinct block numbers in 0..6."""
    try:
        blocks = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated block numbers like 0,1,2, got {text!r}") from None
    if len(set(blocks)) != len(blocks) or not all(0 <= block <= MAX_BLOCK for block in blocks):
        raise argparse.ArgumentTypeError(f"blocks must be distinct numbers in 0..{MAX_BLOCK}, got {text!r}")
    return blocks


def _eval_families(args: argparse.Namespace) -> int:
    # scikit-learn and the feature extractors (torch), only for this command.
    from services.detector.evaluation.families import families_markdown, leave_one_family_out, write_family_report

    model_dir = resolve_model(args.model)
    spec = ModelSpec.read(model_dir)
    onnx = spec.training.get("feature_backend", "torch") == "onnx" and not args.torch_features
    results = leave_one_family_out(args.manifest, model_dir, args.family, onnx_features=onnx)
    print(families_markdown(results, model_dir, args.manifest))
    if args.out:
        write_family_report(results, model_dir, args.manifest, args.out)
    return 0


def _build_graph(args: argparse.Namespace) -> int:
    # torch and the export code: this command is the one place that assembles graphs.
    from services.detector.training.graphs import probe_onnx_path

    model_dir = resolve_model(args.model)
    if ModelSpec.read(model_dir).kind not in GRAPH_KINDS:
        raise CLIError(f"{model_dir}: a seed-baseline model ships its graph (model.onnx); nothing to build")
    print(probe_onnx_path(model_dir))
    return 0


def _train(args: argparse.Namespace) -> int:
    # Imported when the command runs (torch, scikit-learn), so `vcfad --help` stays fast.
    from services.detector.training.frames import FrameHeadConfig, FrameTraining
    from services.detector.training.train import (
        CANDIDATE_BLOCKS,
        REFIT_SPLITS,
        TRAIN_SPLITS,
        candidate_layer_sets,
        check_ensemble_size,
        train_frames_model,
        train_seed_baseline,
        train_whisper_probe,
    )

    name = args.name or args.out.name
    train_splits = REFIT_SPLITS if args.refit else TRAIN_SPLITS
    if args.epochs and args.kind != "whisper-frames":
        raise CLIError("--epochs applies to --kind whisper-frames only")
    probe_options = {
        "--channel-normalisation": args.channel_normalisation,
        "--pooling": args.pooling,
        "--blocks": args.blocks,
        "--ensemble": args.ensemble,
        "--onnx-features": args.onnx_features,
        "--exclude-family": args.exclude_family,
    }
    if args.kind == "whisper-probe":
        if args.onnx_features and args.channel_normalisation:
            raise CLIError("--onnx-features does not support --channel-normalisation (use the torch features)")
        layer_sets = candidate_layer_sets(args.blocks or CANDIDATE_BLOCKS)
        try:
            check_ensemble_size(args.ensemble or 1, layer_sets)
        except ValueError as error:
            raise CLIError(f"--ensemble {args.ensemble}: {error}") from None
        result = train_whisper_probe(
            args.manifest,
            args.out,
            name=name,
            channel_normalisation=args.channel_normalisation,
            pooling=args.pooling or "mean-std",
            layer_sets=layer_sets,
            ensemble=args.ensemble or 1,
            onnx_features=args.onnx_features,
            exclude_families=args.exclude_family,
            train_splits=train_splits,
        )
    elif given := [option for option, value in probe_options.items() if value and option != "--blocks"]:
        raise CLIError(f"{given[0]} applies to --kind whisper-probe only")
    elif args.kind == "whisper-frames":
        config = FrameHeadConfig(layers=tuple(args.blocks)) if args.blocks else FrameHeadConfig()
        recipe = FrameTraining(epochs=args.epochs) if args.epochs else FrameTraining()
        result = train_frames_model(
            args.manifest, args.out, name=name, config=config, recipe=recipe, train_splits=train_splits
        )
    elif args.blocks:
        raise CLIError("--blocks applies to --kind whisper-probe and whisper-frames only")
    else:
        result = train_seed_baseline(args.manifest, args.out, name=name, train_splits=train_splits)
    print(f"{name}: dev EER {100 * result.dev_eer:.2f} %, threshold {result.threshold:.4f} -> {result.model_dir}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    # Imported when the command runs (ONNX Runtime, scikit-learn, matplotlib), so `vcfad --help` stays fast.
    from services.detector.evaluation.evaluate import evaluate, markdown
    from services.detector.inference import Detector

    names = args.model or ["seed-baseline", "default"]
    detectors = [Detector.from_model_dir(resolve_model(name), threads=args.threads) for name in names]
    if args.scores_from is not None and not args.scores_from.is_file():
        raise CLIError(f"--scores-from {args.scores_from}: no such file")
    summaries = evaluate(
        detectors,
        args.manifest,
        args.out,
        split=args.split,
        without_steps=args.without_step,
        scores_from=args.scores_from,
        real_dirs=args.real_dir,
    )
    print(markdown(summaries, [str(manifest) for manifest in args.manifest], [str(f) for f in args.real_dir]))
    if args.out:
        print(f"reports: {args.out}/report.json, report.md, det.png")
    return 0


def _set_threshold(args: argparse.Namespace) -> int:
    # Imported when the command runs (ONNX Runtime, scikit-learn), so `vcfad --help` stays fast.
    from services.detector.evaluation.evaluate import set_threshold
    from services.detector.inference import Detector

    detector = Detector.from_model_dir(resolve_model(args.model), threads=args.threads)
    old, new = set_threshold(
        detector,
        args.manifest,
        split=args.split,
        false_alarm_rate=args.false_alarm_rate,
        real_dirs=args.real_dir,
        out=args.out,
    )
    print(f"{detector.name} ({args.out or detector.model_dir}): threshold {old:.4f} -> {new:.4f}")
    return 0


def _set_input_floor(args: argparse.Namespace) -> int:

    try:
        check_input_floor(args.dbfs)
        model_dir = resolve_model(args.model)
        spec = ModelSpec.read(model_dir)
    except (ValueError, FileNotFoundError) as error:
        raise CLIError(str(error)) from None
    old, spec.input_floor_dbfs = spec.input_floor_dbfs, None if args.off else args.dbfs
    spec.training.setdefault("input_floor_history", []).append(
        {"input_floor_dbfs": spec.input_floor_dbfs, "replaced": old, "date": dt.date.today().isoformat()}
    )
    spec.write(model_dir)
    print(f"{spec.name} ({model_dir}): input floor {old} -> {spec.input_floor_dbfs} dBFS; set the threshold again")
    return 0


def _quantize(args: argparse.Namespace) -> int:
    # Imported when the command runs (torch, ONNX Runtime), so `vcfad --help` stays fast.
    from services.detector.evaluation.evaluate import manifest_rows, set_threshold
    from services.detector.inference import Detector
    from services.detector.training.graphs import quantized_copy

    if args.split and not args.manifest:
        raise CLIError("--split needs --manifest (the manifest whose split sets the copy's threshold)")
    try:
        if args.manifest:  # a wrong manifest is found before the copy is made, not after
            manifest_rows(args.manifest, args.split)
        precision = "int8-matmul-channel" if args.per_channel else "int8-matmul"
        spec = quantized_copy(resolve_model(args.model), args.out, name=args.name, precision=precision)
    except (ValueError, ManifestError, OSError) as error:
        raise CLIError(str(error)) from None
    print(f"{args.out}: {spec.name}, int8 MatMuls ({spec.precision})")
    if args.manifest:
        # The copy was asked for with its own threshold: one without it is not left behind.
        try:
            with removed_on_failure(args.out):
                detector = Detector.from_model_dir(args.out, threads=args.threads)
                old, new = set_threshold(detector, args.manifest, split=args.split)
        except ValueError as error:  # ManifestError included
            raise CLIError(f"{error} ({args.out} removed)") from None
        print(f"{args.out}: threshold {old:.4f} -> {new:.4f} (its EER point on {args.split or 'every split'})")
    else:
        print(f"{args.out}: threshold kept from the float model; set it with `vcfad set-threshold --split dev`")
    return 0
