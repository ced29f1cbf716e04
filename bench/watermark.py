"""Robustness, false positives, quality and cost of the vcfad watermark (shared/watermark.py).

    OMP_NUM_THREADS=1 .venv/bin/python bench/watermark.py --clips 24 --output docs/watermark.json

Watermarked material: the project's own TTS (Piper joe, espeak-ng voices) reading VCTK sentences
(``../shared/data/text``), at 16, 22.05, 24 and 48 kHz. Every clip goes through each attack, then
the detector's own loading (16 kHz, silence trimmed, loudness normalised), and every 1 s window
(every 0.5 s) is read: detection rate and payload bit accuracy. False positives: every 1 s window
of the real speech of ``../shared/data`` this project may use (the FoR real clips of
``external-dev``, evaluation only: nothing is tuned on it; LibriSpeech is reserved and not read)
and of the unmarked TTS clips, with the bench key and with ``--null-keys`` other random keys.
Quality: watermark-to-speech ratio, PESQ (when the ``pesq`` package is installed), Whisper WER and
GE2E similarity with and without the watermark. Cost: seconds of CPU per second of audio.
Prints a JSON summary; ``--output`` also writes it.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy import signal

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.report import emit_json  # the repo root is on the path only from here
from shared.audio import Audio, AudioError, LoadPolicy, load_audio
from shared.sources import SnapshotStore, SourceError, load_sources, snapshot_roots
from shared.tts.debian import EspeakNgTTS
from shared.watermark import Watermarker, WatermarkKey, make_payload

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("VCFAD_SHARED_DATA", REPO.parent / "shared" / "data"))
#: The detector's loading (services/detector/inference.py: DETECTION_LOAD_POLICY).
DETECTION_POLICY = LoadPolicy(min_duration_s=0.3)
RATES_HZ = (16_000, 22_050, 24_000, 48_000)


def ffmpeg_codec(audio: Audio, codec: list[str], suffix: str) -> Audio:
    """Encode with ffmpeg (``codec`` arguments) and decode back to ``audio``'s rate."""
    ffmpeg = shutil.which("ffmpeg") or "ffmpeg"
    base = [ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-y"]
    encoded = subprocess.run(
        [*base, "-f", "wav", "-i", "-", *codec, "-f", suffix, "-"],
        input=audio.to_wav_bytes(),
        capture_output=True,
        check=True,
    ).stdout
    decoded = subprocess.run(
        [*base, "-f", suffix, "-i", "-", "-ar", str(audio.sample_rate_hz), "-ac", "1", "-f", "wav", "-"],
        input=encoded,
        capture_output=True,
        check=True,
    ).stdout
    return load_audio(
        decoded, LoadPolicy(sample_rate_hz=audio.sample_rate_hz, trim_silence=False, normalize_loudness=False)
    )


def telephone(audio: Audio) -> Audio:
    """8 kHz, 300–3400 Hz 4th-order Butterworth band-pass (a narrowband phone line), back up."""
    narrow = audio.resample(8_000)
    sos = signal.butter(4, [300, 3400], btype="bandpass", fs=8_000, output="sos")
    return Audio(signal.sosfilt(sos, narrow.samples).astype(np.float32), 8_000).resample(audio.sample_rate_hz)


def white_noise(audio: Audio, snr_db: float, seed: int) -> Audio:
    power = float(np.mean(audio.samples.astype(np.float64) ** 2))
    noise = np.random.default_rng(seed).normal(scale=np.sqrt(power / 10 ** (snr_db / 10)), size=audio.num_samples)
    return Audio((audio.samples + noise).astype(np.float32), audio.sample_rate_hz)


def speed(audio: Audio, factor: float) -> Audio:
    """Played ``factor`` times faster (pitch and tempo together, like a tape or `sox speed`)."""
    return Audio(audio.samples, round(audio.sample_rate_hz * factor)).resample(audio.sample_rate_hz)


def gain(audio: Audio, gain_db: float) -> Audio:
    scaled = audio.samples * np.float32(10 ** (gain_db / 20))
    return Audio(np.clip(scaled, -1.0, 1.0), audio.sample_rate_hz)


ATTACKS: dict[str, Callable[[Audio, int], Audio]] = {
    "none": lambda a, s: a,
    "mp3 64 kbps": lambda a, s: ffmpeg_codec(a, ["-c:a", "libmp3lame", "-b:a", "64k"], "mp3"),
    "opus 24 kbps": lambda a, s: ffmpeg_codec(a, ["-c:a", "libopus", "-b:a", "24k"], "ogg"),
    "resample 8 kHz and back": lambda a, s: a.resample(8_000).resample(a.sample_rate_hz),
    "telephone band": lambda a, s: telephone(a),
    "white noise 20 dB SNR": lambda a, s: white_noise(a, 20.0, s),
    "gain +6 dB": lambda a, s: gain(a, 6.0),
    "gain -6 dB": lambda a, s: gain(a, -6.0),
    "speed +10 %": lambda a, s: speed(a, 1.10),
    "speed -10 %": lambda a, s: speed(a, 0.90),
    # Pitch-preserving tempo changes (ffmpeg's atempo, WSOLA): time scales, frequency does not.
    "tempo +10 % (pitch kept)": lambda a, s: ffmpeg_codec(a, ["-filter:a", "atempo=1.1", "-c:a", "pcm_s16le"], "wav"),
    "tempo -10 % (pitch kept)": lambda a, s: ffmpeg_codec(a, ["-filter:a", "atempo=0.9", "-c:a", "pcm_s16le"], "wav"),
}


def tts_clips(count: int, text_offset: int) -> list[tuple[str, Audio]]:
    """(text, clip) from Piper joe and espeak-ng voices reading VCTK sentences, at varied rates.

    Sentences are every 611th transcript from ``text_offset``: offset 0 gave the clips the
    watermark's parameters were chosen on (docs/watermark.md), the bench's default offset others.
    """
    # Here, not at the top: piper/onnxruntime load only when the bench runs.
    from shared.tts.piper import PiperTTS

    with (SHARED_DATA / "text" / "vctk_transcripts.csv").open(newline="") as file:
        rows = [row["transcript"] for row in csv.DictReader(file)]
    texts = [t for t in rows[text_offset::611] if 40 <= len(t) <= 160][:count]
    engines = [PiperTTS(), EspeakNgTTS(voice="en-us"), EspeakNgTTS(voice="en-gb", variant="f3")]
    clips = []
    for index, text in enumerate(texts):
        audio = engines[index % len(engines)].synthesize(text)
        rate = RATES_HZ[index % len(RATES_HZ)]
        clips.append((text, audio.resample(rate).trim_silence().normalize_loudness(-23.0)))
    return clips


def real_speech() -> list[Audio]:
    """The real (bonafide) FoR clips of external-dev: evaluation only, nothing is tuned on them."""
    folder = SHARED_DATA / "external-dev" / "fake-or-real-sample"
    with (folder / "manifest.tsv").open(newline="") as file:
        rows = [row for row in csv.DictReader(file, delimiter="\t") if row["label"] == "bonafide"]
    return [load_audio(folder / row["path"], DETECTION_POLICY) for row in rows]


def catalogue_real_files(name: str) -> list[Path]:
    """Every bonafide file of catalogue source ``name`` (configs/detector/sources.toml), extracted
    from its snapshot under ``../.mirror`` or ``VCFAD_SNAPSHOTS`` (docs/dataset.md, "External sources")."""
    sources = {source.name: source for source in load_sources(REPO / "configs/detector/sources.toml")}
    if name not in sources:
        raise SystemExit(f"--real-source {name}: not in configs/detector/sources.toml")
    store = SnapshotStore(roots=snapshot_roots(["../.mirror"], REPO), cache_dir=REPO / "data/sources")
    try:
        clips = [clip for clip in store.clips(sources[name]) if clip.label == "bonafide"]
        paths = store.extract(clips)
    except SourceError as error:
        raise SystemExit(f"--real-source {name}: {error}") from None
    return paths


def load_real_speech(paths: list[Path]) -> list[Audio]:
    """The files as the detector loads them; what it would refuse is skipped, and said."""
    audios = []
    for path in paths:
        try:
            audios.append(load_audio(path, DETECTION_POLICY))
        except AudioError as error:  # what the detector itself would refuse (e.g. a silent take)
            print(f"skipped: {error}", file=sys.stderr)
    return audios


def window_stats(
    watermarker: Watermarker, audio: Audio, payload: int, coded: np.ndarray
) -> tuple[int, int, float, bool, bool, bool]:
    """(windows, detected windows, mean coded-bit accuracy of single windows, clip payload right,
    clip payload wrong (reported, not the embedded one), clip found)."""
    report = watermarker.detect(audio)
    found = len(report.found_windows)
    accuracy = float(np.mean([np.mean(watermarker.window_bits(w) == coded) for w in report.windows]))
    right = report.payload == payload
    wrong = report.payload is not None and not right
    return len(report.windows), found, accuracy, right, wrong, report.present


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=24)
    parser.add_argument(
        "--text-offset", type=int, default=305, help="first transcript row (0: the parameter-tuning clips)"
    )
    parser.add_argument("--null-keys", type=int, default=100, help="other random keys read on the real speech")
    parser.add_argument(
        "--real-source",
        action="append",
        default=[],
        metavar="NAME",
        help="also read every bonafide clip of this catalogue source (its snapshot must be here)",
    )
    parser.add_argument("--skip-quality", action="store_true", help="no WER / GE2E (faster)")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    if args.clips < 1 or args.text_offset < 0 or args.null_keys < 0:
        parser.error("--clips must be ≥ 1, --text-offset and --null-keys ≥ 0")
    # Snapshots are checked first, so a missing one stops the run before the hour of work.
    real_files = {name: catalogue_real_files(name) for name in args.real_source}

    key = WatermarkKey(hashlib.sha256(b"vcfad bench watermark key").digest())
    watermarker = Watermarker(key)
    params = watermarker.params
    clips = tts_clips(args.clips, args.text_offset)
    marked: list[Audio] = []
    coded: list[np.ndarray] = []
    payloads: list[int] = []
    embed_s = audio_s = 0.0
    for index, (text, clip) in enumerate(clips):
        payload = make_payload(key, f"bench-{index}-{text}")
        started = time.process_time()
        marked.append(watermarker.embed(clip, payload))
        embed_s += time.process_time() - started
        audio_s += clip.duration_s
        coded.append(watermarker.coded_bits(payload))
        payloads.append(payload)

    robustness = {}
    detect_s = detect_audio_s = 0.0
    for name, attack in ATTACKS.items():
        windows = found = right = wrong = clips_found = 0
        accuracies = []
        for index, clip in enumerate(marked):
            attacked = load_audio(attack(clip, index).to_wav_bytes(), DETECTION_POLICY)
            started = time.process_time()
            count, hits, accuracy, ok, bad, present = window_stats(watermarker, attacked, payloads[index], coded[index])
            if name == "none":
                detect_s += time.process_time() - started
                detect_audio_s += attacked.duration_s
            windows += count
            found += hits
            right += ok
            wrong += bad
            clips_found += present
            accuracies.append(accuracy)
        robustness[name] = {
            "windows": windows,
            "detection_rate": found / windows,
            "bit_accuracy": float(np.mean(accuracies)),
            "clip_payload_correct": right / len(marked),
            "clip_payload_wrong": wrong / len(marked),
            "clips_found": clips_found / len(marked),
        }
        print(
            f"{name:26s} windows {windows:4d} detected {found / windows:.4f} bits {np.mean(accuracies):.4f} "
            f"payload {right}/{len(marked)} (wrong {wrong}) clips found {clips_found}/{len(marked)}",
            file=sys.stderr,
            flush=True,
        )

    # False positives: unmarked speech read with the bench key and with other random keys.
    real = real_speech()
    unmarked = [load_audio(clip.to_wav_bytes(), DETECTION_POLICY) for _, clip in clips]
    rng = np.random.default_rng(0)
    others = [Watermarker(WatermarkKey(rng.bytes(32))) for _ in range(args.null_keys)]
    false_positives = {}
    # Catalogue sources load one at a time (hours of audio): a callable per set.
    speech_sets: list[tuple[str, Callable[[], list[Audio]]]] = [
        ("real speech (FoR external-dev, bonafide)", lambda: real)
    ]
    speech_sets += [
        (f"real speech ({name}, bonafide)", lambda paths=paths: load_real_speech(paths))
        for name, paths in real_files.items()
    ]
    speech_sets.append(("unmarked TTS clips", lambda: unmarked))
    for name, load in speech_sets:
        audios = load()
        trials = hits = own_hits = own_windows = 0
        recording_trials = recording_hits = own_recording_hits = 0
        max_z = -np.inf
        threshold = params.threshold_z()
        readers = (watermarker, *others)
        for audio in audios:
            frames_db = watermarker.log_spectrogram(audio)
            frames = watermarker.window_frames(frames_db.shape[0])
            best = np.full(len(readers), -np.inf)
            for first, count in frames:
                own_windows += 1
                # The audio's residuals once; each key's pattern is then a cheap correlation.
                residuals = watermarker.window_residuals(frames_db[first : first + count], first)
                for index, reader in enumerate(readers):
                    z = reader.read_residuals(residuals).z
                    trials += 1
                    hits += z >= threshold
                    own_hits += reader is watermarker and z >= threshold
                    best[index] = max(best[index], z)
            max_z = max(max_z, float(best.max()))
            # The recording's verdict: its best window against the presence threshold for its length.
            called = best >= params.presence_threshold_z(len(frames))
            recording_trials += len(readers)
            recording_hits += int(called.sum())
            own_recording_hits += int(called[0])
        false_positives[name] = {
            "clips": len(audios),
            "seconds": round(sum(a.duration_s for a in audios), 1),
            "windows_with_bench_key": own_windows,
            "false_positives_with_bench_key": int(own_hits),
            "window_key_trials": trials,
            "false_positives": int(hits),
            "recordings_called_marked_with_bench_key": own_recording_hits,
            "recording_key_trials": recording_trials,
            "recordings_called_marked": recording_hits,
            "max_z": round(float(max_z), 3),
        }
        print(
            f"FP {name}: windows {hits}/{trials}, recordings {recording_hits}/{recording_trials} (max z {max_z:.2f})",
            file=sys.stderr,
            flush=True,
        )

    quality = quality_table(clips, marked, skip_models=args.skip_quality)
    summary = {
        "machine": f"{platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "params": dataclasses.asdict(params),
        "threshold_z": params.threshold_z(),
        "tests_per_window": params.tests_per_window(),
        "clips": len(clips),
        "text_offset": args.text_offset,
        "real_sources": args.real_source,
        "audio_s": round(audio_s, 1),
        "robustness": robustness,
        "false_positives": false_positives,
        "quality": quality,
        "cost_cpu_s_per_audio_s": {"embed": embed_s / audio_s, "detect": detect_s / detect_audio_s},
    }
    emit_json(summary, args.output)


def quality_table(clips: list[tuple[str, Audio]], marked: list[Audio], *, skip_models: bool) -> dict[str, object]:
    ratios = []
    for (_, clip), mark in zip(clips, marked, strict=True):
        difference = mark.samples.astype(np.float64) - clip.samples
        ratios.append(10 * np.log10(np.sum(difference**2) / np.sum(clip.samples.astype(np.float64) ** 2)))
    quality: dict[str, object] = {
        "watermark_to_speech_db_mean": float(np.mean(ratios)),
        "watermark_to_speech_db_max": float(np.max(ratios)),
    }
    try:
        # Optional: PESQ is a C extension; the table says when it is missing.
        from pesq import pesq
    except ImportError:
        quality["pesq_wb"] = "pesq not installed"
    else:
        scores = [
            pesq(16_000, c.resample(16_000).samples, m.resample(16_000).samples, "wb")
            for (_, c), m in zip(clips, marked, strict=True)
        ]
        quality["pesq_wb_mean"] = float(np.mean(scores))
        quality["pesq_wb_min"] = float(np.min(scores))
    if skip_models:
        return quality
    from shared.asr import SpeechRecognizer  # faster-whisper: only when asked
    from shared.speaker import SpeakerEncoder  # resemblyzer/torch: only when asked

    recognizer = SpeechRecognizer(threads=2)
    encoder = SpeakerEncoder()
    wer_plain = [recognizer.word_error_rate(c, t) for t, c in clips]
    wer_marked = [recognizer.word_error_rate(m, t) for (t, _), m in zip(clips, marked, strict=True)]
    similarity = [encoder.similarity(c, m) for (_, c), m in zip(clips, marked, strict=True)]
    # Noise level of the similarity: the same clip with 40 dB white noise, no watermark.
    similarity_noise = [encoder.similarity(c, white_noise(c, 40.0, i)) for i, (_, c) in enumerate(clips)]
    quality.update(
        {
            "whisper_wer_unmarked": float(np.mean(wer_plain)),
            "whisper_wer_marked": float(np.mean(wer_marked)),
            "ge2e_similarity_marked_vs_unmarked": float(np.mean(similarity)),
            "ge2e_similarity_40db_noise_vs_clean": float(np.mean(similarity_noise)),
        }
    )
    return quality


if __name__ == "__main__":
    main()
