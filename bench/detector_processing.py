"""How production processing of *real* speech moves the detector's verdict (false alarms).

    OMP_NUM_THREADS=1 .venv/bin/python bench/detector_processing.py \
        --real-source ravdess-speech-zenvilleerasmus --real-source speech-accent-archive-andrewwang247 \
        --output docs/detector-processing.json

Professionally produced speech (prompts, broadcast, podcasts) is called fake far more often than
other real speech (docs/detector.md, "False alarms on one professional studio voice"). This bench
asks which step of such production does it: a seeded sample of real recordings from catalogue
sources (``configs/detector/sources.toml``; their snapshots under ``../.mirror`` or
``VCFAD_SNAPSHOTS``) goes through each processing chain below (ffmpeg filters or codecs, fixed settings),
then the detector's own loading, and the model scores it: the share called fake at the model's
own threshold, and the median score, per chain. The same recordings go through every chain, so
the rows differ by the processing alone (a recording the detector refuses after a chain, e.g.
too little sound left by a gate, drops out of that row only). ``--input-floor`` also scores each chain with the serving
input floor raised to that level (``input_floor_dbfs``, docs/detector.md).

Nothing is tuned on it: it is a measurement of the shipped model. (The catalogue's real sets are
in the detector corpus: at most 160 files of each, drawn in a seeded order, reached training;
the "none" row is therefore close to a training-set figure, and the other rows show what the
processing alone changes.)
"""

from __future__ import annotations

import argparse
import os
import random
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.report import emit_json, run_context  # the repo root is on the path only from here
from bench.watermark import catalogue_real_files, ffmpeg_codec
from services.detector.cli import resolve_model
from services.detector.inference import DETECTION_LOAD_POLICY, Detector
from services.detector.model_files import ModelFileError
from shared.audio import Audio, AudioError, LoadPolicy, load_audio


def _filtered(graph: str) -> tuple[list[str], str]:
    """ffmpeg output arguments and container of a filter graph, written as 16-bit PCM."""
    return ["-filter:a", graph, "-c:a", "pcm_s16le"], "wav"


#: Each chain's ffmpeg output arguments and container (None: the recording as it is). Settings are
#: fixed, typical of voice production: broadcast loudness, a compressor and limiter, dynamic
#: normalisation, two noise gates (the pauses of edited speech are digital silence), spectral
#: noise reduction, a de-esser and a treble shelf either way (what shapes a voice's upper band);
#: and the codecs
#: prompts and calls travel in: G.722 (wideband VoIP, the studio prompts' format), G.711 mu-law and
#: GSM 06.10 (8 kHz telephony).
CHAINS: dict[str, tuple[list[str], str] | None] = {
    "none": None,
    "loudness normalisation (EBU R128, -16 LUFS)": _filtered("loudnorm=I=-16:TP=-1.5:LRA=11"),
    "compressor 6:1 + limiter": _filtered(
        "acompressor=threshold=-30dB:ratio=6:attack=5:release=80:makeup=8,alimiter=limit=0.9"
    ),
    "dynamic normalisation (dynaudnorm)": _filtered("dynaudnorm=f=150:g=15"),
    "noise gate, gentle (-46 dBFS)": _filtered("agate=threshold=0.005:ratio=9000:attack=1:release=50"),
    "noise gate, hard (-34 dBFS)": _filtered("agate=threshold=0.02:ratio=9000:attack=1:release=50"),
    "noise reduction (afftdn, 20 dB)": _filtered("afftdn=nr=20:nf=-50"),
    "de-esser": _filtered("deesser=i=0.6:m=0.5:f=0.5"),
    "treble cut (-6 dB shelf at 4 kHz)": _filtered("treble=g=-6:f=4000"),
    "treble boost (+6 dB shelf at 4 kHz)": _filtered("treble=g=6:f=4000"),
    "G.722 (16 kHz, 64 kbit/s)": (["-ar", "16000", "-c:a", "g722"], "g722"),
    "G.711 mu-law (8 kHz)": (["-ar", "8000", "-c:a", "pcm_mulaw"], "wav"),
    "GSM 06.10 (8 kHz)": (["-ar", "8000", "-c:a", "libgsm"], "gsm"),
}
#: Recordings are read as they are (no trimming or levelling) before the chain; the detector's own
#: loading follows it.
RAW_POLICY = LoadPolicy(trim_silence=False, normalize_loudness=False, min_duration_s=0.3)


def processed(audio: Audio, chain: tuple[list[str], str] | None) -> Audio:
    """``audio`` through ``chain`` (ffmpeg output arguments and container) and back, as the detector loads it."""
    if chain is not None:
        arguments, container = chain
        audio = ffmpeg_codec(audio, arguments, container)
    return load_audio(audio.to_wav_bytes(), DETECTION_LOAD_POLICY)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--real-source", action="append", default=[], metavar="NAME", help="catalogue source of real speech"
    )
    parser.add_argument("--per-source", type=int, default=100, help="recordings drawn from each source")
    parser.add_argument("--model", default="default", help="model name or folder (as `vcfad detect --model`)")
    parser.add_argument(
        "--input-floor", type=float, action="append", default=[], metavar="DBFS", help="also score with this floor"
    )
    parser.add_argument(
        "--chain", action="append", choices=list(CHAINS), metavar="NAME", help="only these chains (default: all)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    if not args.real_source:
        parser.error("name at least one --real-source (configs/detector/sources.toml)")
    if args.per_source < 1:
        parser.error("--per-source must be ≥ 1")
    if any(not -90.0 <= floor <= -20.0 for floor in args.input_floor):
        parser.error("--input-floor must be between -90 and -20 dBFS")
    load_start = os.getloadavg()
    # Snapshots and the model are checked before any scoring, each with its own message.
    sources = {name: catalogue_real_files(name) for name in args.real_source}
    try:
        detector = Detector.from_model_dir(resolve_model(args.model))
    except (FileNotFoundError, ModelFileError) as error:
        parser.error(str(error))
    rng = random.Random(args.seed)
    recordings: list[tuple[str, Audio]] = []
    for name, files in sources.items():
        for path in rng.sample(files, min(args.per_source, len(files))):
            try:
                recordings.append((name, load_audio(path, RAW_POLICY)))
            except AudioError as error:  # what the detector itself would refuse
                print(f"skipped: {error}", file=sys.stderr)
    rows = []
    for chain_name, chain in CHAINS.items():
        if args.chain and chain_name not in args.chain:
            continue
        scores: dict[float | None, list[float]] = {None: [], **{floor: [] for floor in args.input_floor}}
        refused = 0
        for _, audio in recordings:
            try:
                clip = processed(audio, chain)
            except AudioError:  # e.g. a gate that left too little sound: the detector refuses it too
                refused += 1
                continue
            for floor in scores:
                prepared = clip if floor is None else Detector.with_input_floor(clip, floor)
                scores[floor].append(detector.score_audio(prepared))
        for floor, values in scores.items():
            array = np.array(values)
            row = {
                "chain": chain_name,
                "ffmpeg": None if chain is None else chain[0],
                "container": None if chain is None else chain[1],
                "input_floor_dbfs": floor,
                "scored": len(values),
                "refused": refused,
                "called_fake": float(np.mean(array >= detector.threshold)) if len(values) else None,
                "median_score": float(np.median(array)) if len(values) else None,
            }
            rows.append(row)
            print(
                f"{chain_name:45s} floor {floor if floor is not None else '-':>6} scored {len(values):4d} "
                f"refused {refused:3d} called fake {row['called_fake']:.3f} median {row['median_score']:.3f}",
                flush=True,
            )
    emit_json(
        {
            **run_context(load_start),
            "model": args.model,
            "threshold": detector.threshold,
            "sources": args.real_source,
            "per_source": args.per_source,
            "recordings": len(recordings),
            "rows": rows,
        },
        args.output,
    )


if __name__ == "__main__":
    main()
