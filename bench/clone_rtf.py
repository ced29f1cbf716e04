"""Real-time factor of a cloning backend (default: the configured default) on this machine.

    OMP_NUM_THREADS=2 .venv/bin/python bench/clone_rtf.py [--backend kokoro-ge2e] [--threads 2]

RTF = synthesis wall time / seconds of speech produced, for texts of several lengths, with the
voice already enrolled (enrollment, a once-per-voice cost, is timed and reported separately).
For ``kokoro-ge2e`` both Kokoro graphs (``fast``, the default, and ``packaged``) are timed in the
same run, interleaved, and ``rtf_by_kokoro_graph`` gives both.
Prints a JSON summary; ``--output`` also writes it to a file.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.report import emit_json  # the repo root is on the path only from here

TEXTS = (
    "Please call Stella.",
    "The old lighthouse keeper climbed the stairs every evening to light the lamp.",
    "We walked along the shore until the sun went down. The wind grew colder, and the waves "
    "became louder. Nobody spoke until we reached the harbour, where a small boat was waiting. "
    "It was late, but the captain agreed to take us across the bay.",
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--reference", type=Path, default=None, help="default: a LibriSpeech test-other file")
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument(
        "--kokoro-graph",
        action="append",
        choices=["fast", "packaged"],
        help="Kokoro graph(s) to time (default for kokoro-ge2e: both, fast first)",
    )
    args = parser.parse_args()

    from services.cloner.config import ClonerSettings
    from services.cloner.pipeline import Cloner

    settings = ClonerSettings(threads=args.threads)
    if args.backend:
        settings = settings.model_copy(update={"backend": args.backend})
    reference = (
        args.reference
        or sorted(
            (Path(__file__).resolve().parents[2] / "shared" / "data" / "librispeech" / "test-other").rglob("*.flac")
        )[0]
    )
    # Kokoro's two graphs side by side in one run (the default first), interleaved so that a
    # change in the machine's speed hits both alike.
    graphs = args.kokoro_graph or (["fast", "packaged"] if settings.backend == "kokoro-ge2e" else [None])
    clones = {}
    for graph in graphs:
        variant = settings if graph is None else settings.model_copy(update={"kokoro_graph": graph})
        started = time.perf_counter()
        cloner = Cloner.from_settings(variant)
        load_s = time.perf_counter() - started
        started = time.perf_counter()
        voice = cloner.encode([str(reference)])
        encode_s = time.perf_counter() - started
        started = time.perf_counter()
        enrolled = cloner.enroll(voice)
        enroll_s = time.perf_counter() - started
        cloner.speak(enrolled, "Warm up.")
        clones[graph] = (
            cloner,
            enrolled,
            {"load_s": round(load_s, 1), "encode_reference_s": round(encode_s, 2), "enroll_s": round(enroll_s, 1)},
        )
    runs: dict[str | None, list[dict]] = {graph: [] for graph in graphs}
    for text in TEXTS:
        for _ in range(args.repeats):
            for graph, (cloner, enrolled, _) in clones.items():
                started = time.perf_counter()
                audio = cloner.speak(enrolled, text)
                elapsed = time.perf_counter() - started
                # The channel stage alone (already inside synth_s when match_channel is on): same cost again.
                started = time.perf_counter()
                cloner.channel_matcher.apply(audio, enrolled.channel, seed=0)
                channel_s = time.perf_counter() - started
                runs[graph].append(
                    {
                        "chars": len(text),
                        "audio_s": round(audio.duration_s, 2),
                        "synth_s": round(elapsed, 3),
                        "channel_stage_s": round(channel_s, 4),
                    }
                )

    def rtf(rows: list[dict], key: str = "synth_s") -> float:
        return sum(r[key] for r in rows) / sum(r["audio_s"] for r in rows)

    default_graph = graphs[0]
    cloner, _, timings = clones[default_graph]
    summary = {
        "backend": cloner.backend_name,
        "kokoro_graph": default_graph,
        "threads": args.threads,
        "cpu_count": os.cpu_count(),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
        **timings,
        "match_channel": cloner.settings.match_channel,
        "rtf": round(rtf(runs[default_graph]), 3),
        "channel_stage_rtf": round(rtf(runs[default_graph], "channel_stage_s"), 4),
        "rtf_by_kokoro_graph": {str(graph): round(rtf(rows), 3) for graph, rows in runs.items()}
        if len(graphs) > 1
        else None,
        "runs": runs[default_graph],
    }
    emit_json(summary, args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
