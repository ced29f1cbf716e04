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

from services.detector.features import WhisperLayerFeatures
from services.detector.manifest import read_manifest, select
from services.detector.training import CANDIDATE_C, FeatureCache, fit_probe_head


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", type=Path, required=True)
    parser.add_argument("--layers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.25, 0.5, 0.75, 1.0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rows = read_manifest(args.manifest)
    train, dev = select(rows, "train"), select(rows, "dev")
    extractor = WhisperLayerFeatures("base", num_layers=4)
    cache = FeatureCache(extractor.cache_id)
    x_train, x_dev = cache.features(train, extractor, "train"), cache.features(dev, extractor, "dev")
    y_train = np.array([row.is_fake for row in train], dtype=int)
    y_dev = np.array([row.is_fake for row in dev], dtype=int)
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
