"""`vcfad data ...` sub-commands: `build CONFIG`, `verify CONFIG`, `probe MANIFEST`, `sources` and
`vocoder ...` (:mod:`services.detector.dataset.vocoder_cli`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from services.detector.dataset import vocoder_cli
from services.detector.dataset.config import ConfigError, External, load_config
from services.detector.dataset.readers import CorpusError
from services.detector.training.manifest import ManifestError
from shared.sources import SnapshotStore, SourceError, load_sources, summarise, summary_markdown
from vcfad.cli_common import CLIError, positive_int


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `vcfad data build`, `vcfad data verify`, `vcfad data probe` and `vcfad data vocoder`."""
    data = subparsers.add_parser("data", help="build and check detector datasets")
    commands = data.add_subparsers(dest="data_command", required=True, metavar="DATA_COMMAND")

    build = commands.add_parser(
        "build",
        help="build a dataset (manifest + 16 kHz audio) from a TOML config; resumable",
        description="Build real windows and labelled fakes into data/detector/<name>/ (or --output-dir); "
        "re-running skips finished clips. The shortcut probe runs at the end.",
    )
    build.add_argument("config", type=Path, help="TOML build config, e.g. configs/detector/default.toml")
    build.add_argument("--output-dir", type=Path, default=None, help="override the config's output folder")
    build.add_argument("--no-probe", action="store_true", help="skip the shortcut probe")
    build.add_argument(
        "--as-recorded",
        action="store_true",
        help="the same clips without channel transfer or augmentation, into <output>/as-recorded/ "
        "(reuses the built fake windows; one process)",
    )
    parallel = build.add_mutually_exclusive_group()
    parallel.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="make clips in this many processes (same dataset as 1; give each OMP_NUM_THREADS=cores/jobs)",
    )
    parallel.add_argument(
        "--shard",
        default=None,
        metavar="K/N",
        help="make only share K of N of the clips and write no manifest (what --jobs runs in each child)",
    )
    build.set_defaults(handler=_build)

    verify = commands.add_parser(
        "verify",
        help="make some built clips of every system again and check they are identical",
        description="Remake --per-system clips of each system and real source of a built dataset from "
        "their seeds alone (no cache) and compare them with the files: exit 1 if any differs.",
    )
    verify.add_argument("config", type=Path, help="the TOML config the dataset was built from")
    verify.add_argument("--output-dir", type=Path, default=None, help="the dataset folder, if not the config's")
    verify.add_argument("--per-system", type=positive_int, default=3, help="clips to remake per system (default 3)")
    verify.add_argument("--as-recorded", action="store_true", help="verify the build's as-recorded copy")
    verify.set_defaults(handler=_verify)

    probe = commands.add_parser(
        "probe",
        help="shortcut probe: can duration, noise floor, silence share and high-band energy tell the classes apart?",
    )
    probe.add_argument("manifest", type=Path, help="a manifest.tsv with a split column (train/dev/test)")
    probe.add_argument("--output", type=Path, default=None, help="write the result as JSON here")
    probe.set_defaults(handler=_probe)

    sources = commands.add_parser(
        "sources",
        help="the external source catalogue: clips, minutes, speakers, systems, families, licences per source",
        description="Read the catalogue (configs/detector/sources.toml), find each repository's snapshot at its "
        "commit and print a Markdown table. Sources without a snapshot here are listed as such.",
    )
    defaults = External()
    sources.add_argument("--catalogue", type=Path, default=defaults.catalogue_path(), help="catalogue TOML")
    sources.add_argument(
        "--snapshots",
        type=Path,
        action="append",
        default=None,
        help=f"folder holding snapshots (repeatable; default: VCFAD_SNAPSHOTS or {', '.join(defaults.snapshots)})",
    )
    sources.add_argument("--no-measure", action="store_true", help="count files only (no extraction, no seconds)")
    sources.add_argument("--output", type=Path, default=None, help="also write the table to this file")
    sources.set_defaults(handler=_sources)

    vocoder_cli.register(commands)


def _build(args: argparse.Namespace) -> int:
    # Imported when the command runs (the generators, librosa, scikit-learn), so `vcfad --help` stays fast.
    from services.detector.dataset.build import BuildError, DatasetBuilder, Shard, as_recorded_target, build_dataset

    try:
        config = load_config(args.config)
        window_cache_dir = None
        if args.as_recorded:
            if args.shard is not None or args.jobs != 1:
                raise CLIError("--as-recorded runs in one process: leave out --jobs and --shard")
            base = args.output_dir or config.output_path()
            if not (base / "manifest.tsv").is_file():
                raise CLIError(f"--as-recorded copies the build in {base}: run `vcfad data build {args.config}` first")
            config, args.output_dir, window_cache_dir = as_recorded_target(config, base)
        if args.shard is not None:
            shard = Shard.parse(args.shard)
            DatasetBuilder(config, output_dir=args.output_dir).run(shard=shard)
            print(f"shard {args.shard}: clips made; a run without --shard writes the manifest")
            return 0
        summary = build_dataset(
            config,
            output_dir=args.output_dir,
            probe=False if args.no_probe else None,
            jobs=args.jobs,
            config_path=args.config,
            window_cache_dir=window_cache_dir,
        )
    except (ConfigError, BuildError, CorpusError) as error:
        raise CLIError(str(error)) from None
    for warning in summary.warnings[:20]:
        print(f"warning: {warning}")
    if len(summary.warnings) > 20:
        print(f"warning: ... {len(summary.warnings) - 20} more in build_info.json")
    print(f"manifest: {summary.manifest}")
    print("clips per split: " + json.dumps(summary.counts))
    print(f"reused {summary.reused_items}, failed {summary.failed_items}, wall {summary.wall_s:.0f} s")
    return 0


def _verify(args: argparse.Namespace) -> int:
    # Imported when the command runs (the generators, librosa, torch), so `vcfad --help` stays fast.
    from services.detector.dataset.build import BuildError, DatasetBuilder, as_recorded_target

    try:
        config, output_dir = load_config(args.config), args.output_dir
        if args.as_recorded:
            config, output_dir, _ = as_recorded_target(config, output_dir)
        builder = DatasetBuilder(config, output_dir=output_dir, log=lambda message: None)
        if not (builder.output_dir / "manifest.tsv").is_file():
            raise CLIError(f"{builder.output_dir}: no built dataset (run `vcfad data build {args.config}` first)")
        result = builder.verify(args.per_system)
    except (ConfigError, BuildError, CorpusError, json.JSONDecodeError) as error:
        raise CLIError(str(error)) from None
    source = "as the build" if result.threads_recorded else "the build recorded none: the current count"
    print(f"remade with {result.threads} compute thread(s), {source}")
    for system, checks in result.checks.items():
        identical = sum(status == "identical" for _, status in checks)
        print(f"{system:45s} {identical}/{len(checks)} identical")
    for line in result.problems:
        print(line)
    return 1 if result.problems else 0


def _probe(args: argparse.Namespace) -> int:
    # Imported when the command runs (scikit-learn, librosa), so `vcfad --help` stays fast.
    from services.detector.dataset.probe import probe_manifest

    try:
        result = probe_manifest(args.manifest, args.output)
    except (ManifestError, ValueError) as error:
        raise CLIError(str(error)) from None
    print(result.table())
    return 0


def _sources(args: argparse.Namespace) -> int:
    defaults = External()
    roots = args.snapshots or defaults.snapshot_roots()
    try:
        catalogue = load_sources(args.catalogue)
        store = SnapshotStore(roots, defaults.cache_path())
        table = summary_markdown([summarise(source, store, measure=not args.no_measure) for source in catalogue])
    except SourceError as error:
        raise CLIError(str(error)) from None
    print(table)
    if args.output:
        args.output.write_text(table + "\n", encoding="utf-8")
    return 0
