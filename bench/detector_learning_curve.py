"""Dev EER of the `default` recipe against the amount of training data (a learning curve).

    .venv/bin/python bench/detector_learning_curve.py --manifest data/detector/default/manifest.tsv \\
        [--layers 1 2 3 4] [--fractions 0.25 0.5 0.75 1] [--repeats 3]

For each fraction of the training clips (drawn at random, ``--repeats`` draws each), fits the
whisper-probe head on the given layers for every C of the training grid and prints the best dev
EER per draw. It answers one question: would more training data of the same kind still lower the
dev EER? Features come from the training cache (``vcfad train-detector`` fills it).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from services.detector.training.manifest import ManifestError
from services.detector.training.train import CANDIDATE_C, fit_probe_head, probe_features, split_rows

#: Hidden states whose pooled statistics the training cache holds (0 = the front end).
CACHED_BLOCKS = (0, 1, 2, 3, 4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", type=Path, required=True)
    parser.add_argument("--layers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.25, 0.5, 0.75, 1.0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not set(args.layers) <= set(CACHED_BLOCKS):
        parser.error(f"--layers: blocks {sorted(set(args.layers) - set(CACHED_BLOCKS))} not among {CACHED_BLOCKS}")
    if not all(0.0 < fraction <= 1.0 for fraction in args.fractions):
        parser.error(f"--fractions: each must be in (0, 1], got {args.fractions}")
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    try:
        train, dev = split_rows(args.manifest)
    except ManifestError as error:
        parser.error(str(error))
    x_train, y_train, x_dev, y_dev = probe_features(train, dev, num_layers=max(CACHED_BLOCKS))
    rng = np.random.default_rng(args.seed)
    print(f"manifest: {args.manifest}; layers {args.layers}; {len(train)} train / {len(dev)} dev clips")
    print("| share of train | clips | best dev EER per draw (C grid) |")
    print("|---|---|---|")
    for fraction in args.fractions:
        size = round(fraction * len(train))
        eers = []
        for _ in range(args.repeats if fraction < 1.0 else 1):
            chosen = rng.permutation(len(train))[:size]
            eers.append(
                min(
                    fit_probe_head(x_train[chosen], y_train[chosen], x_dev, y_dev, args.layers, c)[1]
                    for c in CANDIDATE_C
                )
            )
        print(f"| {fraction:.0%} | {size} | {' / '.join(f'{100 * eer:.1f} %' for eer in eers)} |", flush=True)


if __name__ == "__main__":
    main()
