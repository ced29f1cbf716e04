"""How many clones does it take to strip or forge the vcfad watermark without the key?

    OMP_NUM_THREADS=1 .venv/bin/python bench/watermark_averaging.py --output docs/watermark-averaging.json

The attacker knows the design (this repository, ``WatermarkParams``) but not the key, and holds N
clones marked with one key: different voices and texts, so different payloads, but the same sync
chips in every second of every clone (docs/watermark.md, "What it does not do"). The pattern starts
at each clone's first sample, so the attacker can line the clones up without the key. For each N:

1. **Estimate.** Sum, over the clones and over their windows, the key-independent cell residuals
   the detector computes (``Watermarker.window_residuals`` at speed 1, offset 0): the speech
   averages out, the sync chips do not (the payload cells do too, as payloads differ). The cells
   with the largest sums (the sync share) and their signs are the estimate.
2. **Strip.** Each of the held-out marked clones is embedded again with the *opposite* of the
   estimate, at the design's strength, by the embedder's own informed method (what an attacker
   with this code would do); the detector then reads it: share of windows and of clips found.
3. **Forge.** Real recordings (FoR external-dev's real clips; evaluation only) are embedded with
   the estimate: share of windows and clips the detector takes for this deployment's clones, and
   of clips whose payload it reads (only those it labels `fake` by the watermark alone).
4. **Forge with a payload.** As 3, but the cells outside the estimate's sync share take the signs
   of one clone's own residuals: a forger who knows that payloads differ between clones copies
   one clone's payload beside the averaged sync pattern. A payload read is then that clone's.
5. **Forge from one long clone.** As 4, with one clone of the longest text the service accepts
   (400 characters, about 23 s: 23 periods of the same payload) added to the average and giving
   the payload cells.
6. **Copy the long clone period by period.** As 5, but each period of the recording takes the
   signs of the same period of the long clone (read in the window that starts there): what
   changes from period to period (the payload cells' content bits) is copied as it was.

Since 2026-12-07 the payload cells are bound to the speech they sit in (docs/watermark.md,
"Design"), so 4–6 copy signs that the detector, reading the recording's own content, scrambles.

Material: the project's own TTS (Piper joe, espeak-ng voices) reading VCTK sentences, transcript rows
other than the watermark bench's (305) and its tuning clips (0, 100, 200, 400, 500): the pool from
rows 50, 150 and 250, the held-out targets from row 350.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.report import emit_json  # the repo root is on the path only from here
from bench.watermark import DETECTION_POLICY, real_speech, tts_clips
from shared.audio import Audio, load_audio
from shared.tts.piper import PiperTTS
from shared.watermark import Watermarker, WatermarkKey, make_payload

CLONE_COUNTS = (1, 2, 4, 8, 16, 32, 64)


def unit_cells(watermarker: Watermarker, frames_db: np.ndarray, first: int, count: int) -> np.ndarray:
    """(time cells, freq cells): the cell residuals of the window of ``count`` frames from
    ``first`` at speed 1 and offset 0, computed from the audio and the public design alone."""
    params = watermarker.params
    residuals = watermarker.window_residuals(frames_db[first : first + count], first, [(1.0, 1.0)]).residuals[0]
    return residuals[:: params.phase_bins // params.time_cells]  # pattern time cell c at offset 0: row c·w


def cell_sums(watermarker: Watermarker, audio: Audio) -> np.ndarray:
    """(time cells, freq cells): the clip's cell residuals at speed 1 and offset 0 (:func:`unit_cells`),
    summed over its windows."""
    frames_db = watermarker.log_spectrogram(audio)
    windows = watermarker.window_frames(frames_db.shape[0])
    return np.sum([unit_cells(watermarker, frames_db, first, count) for first, count in windows], axis=0)


def estimated_chips(sums: np.ndarray, sync_fraction: float, one_clone: np.ndarray | None = None) -> np.ndarray:
    """±1 on the ``sync_fraction`` of cells with the largest summed magnitude; elsewhere the signs
    of ``one_clone``'s own sums (a copied payload), or 0 without it."""
    keep = np.abs(sums) >= np.quantile(np.abs(sums), 1.0 - sync_fraction)
    rest = np.zeros_like(sums) if one_clone is None else np.sign(one_clone)
    return np.where(keep, np.sign(sums), rest)


def imprint(watermarker: Watermarker, audio: Audio, signs: np.ndarray) -> Audio:
    """``audio`` with ``signs`` ((time cells, freq cells), or one such per period) embedded by the
    design's own informed embedder (:meth:`Watermarker.embed_pattern`): what an attacker with this
    code does with an estimate."""
    return watermarker.embed_pattern(audio, signs if signs.ndim == 3 else signs[None])


def period_signs(watermarker: Watermarker, audio: Audio) -> np.ndarray:
    """(periods, time cells, freq cells): the signs of each period's own cell residuals, read in
    the window that starts with the period (speed 1, offset 0): a period-by-period copy."""
    frames_db = watermarker.log_spectrogram(audio)
    count = watermarker.window_frames(frames_db.shape[0])[0][1]
    starts = range(0, max(frames_db.shape[0] - count, 0) + 1, watermarker.params.phase_bins)
    return np.stack([np.sign(unit_cells(watermarker, frames_db, first, count)) for first in starts])


def found(watermarker: Watermarker, audio: Audio) -> tuple[int, int, bool, int | None]:
    """(windows found, windows, clip found, the payload read or None) as the detector loads and
    reads ``audio``."""
    report = watermarker.detect(load_audio(audio.to_wav_bytes(), DETECTION_POLICY))
    hits = len(report.found_windows)
    return hits, len(report.windows), report.present, report.payload


def copy_shares(prefix: str, results: list[tuple[int, int, bool, int | None]], own: int) -> dict[str, float]:
    """Shares of the recordings (:func:`found` results) where the copy was found, read with the
    payload ``own`` it was copied from, and read with another payload."""
    count = len(results)
    return {
        f"{prefix}_clips_found": sum(present for _, _, present, _ in results) / count,
        f"{prefix}_clips_with_its_payload": sum(read == own for *_, read in results) / count,
        f"{prefix}_clips_with_another_payload": sum(read is not None and read != own for *_, read in results) / count,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, default=12, help="held-out marked clones to strip")
    parser.add_argument("--forged", type=int, default=24, help="real recordings to forge the mark onto")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    if args.targets < 1 or args.forged < 1:
        parser.error("--targets and --forged must be ≥ 1")

    key = WatermarkKey(hashlib.sha256(b"vcfad averaging bench key").digest())
    watermarker = Watermarker(key)
    params = watermarker.params
    pool_clips = tts_clips(40, 50) + tts_clips(40, 150) + tts_clips(40, 250)
    if len(pool_clips) < max(CLONE_COUNTS):
        raise SystemExit(f"only {len(pool_clips)} pool clips; {max(CLONE_COUNTS)} needed")
    pool = [watermarker.embed(clip, make_payload(key, f"pool-{i}-{text}")) for i, (text, clip) in enumerate(pool_clips)]
    targets = [
        (watermarker.embed(clip, make_payload(key, f"target-{i}-{text}")), clip)
        for i, (text, clip) in enumerate(tts_clips(args.targets, 350))
    ]
    real = real_speech()[: args.forged]
    sums = [cell_sums(watermarker, clone) for clone in pool]
    long_text = " ".join(text for text, _ in tts_clips(8, 450))[:400]
    long_payload = make_payload(key, f"long-{long_text}")
    long_clone = watermarker.embed(
        PiperTTS().synthesize(long_text).resample(22_050).trim_silence().normalize_loudness(-23.0), long_payload
    )
    long_sums = cell_sums(watermarker, long_clone)
    long_periods = period_signs(watermarker, long_clone)
    sync = watermarker.pattern.role < 0

    baseline = [found(watermarker, marked) for marked, _ in targets]
    rows = []
    for count in CLONE_COUNTS:
        total = np.sum(sums[:count], axis=0)
        chips = estimated_chips(total, params.sync_fraction)
        agreement = float(np.mean(np.sign(total[sync]) == watermarker.pattern.chips[sync]))
        stripped = [(imprint(watermarker, marked, -chips), clip) for marked, clip in targets]
        strip_hits = [found(watermarker, audio) for audio, _ in stripped]
        # The attack's own cost: what it changed, relative to the speech (dB).
        change_db = [
            10 * np.log10(np.sum((a.samples - m.samples) ** 2) / np.sum(c.samples.astype(np.float64) ** 2))
            for (a, c), (m, _) in zip(stripped, targets, strict=True)
        ]
        forged = [found(watermarker, imprint(watermarker, audio, chips)) for audio in real]
        copy_chips = estimated_chips(total, params.sync_fraction, one_clone=sums[0])
        copied = [found(watermarker, imprint(watermarker, audio, copy_chips)) for audio in real]
        long_chips = estimated_chips(total + long_sums, params.sync_fraction, one_clone=long_sums)
        long_copies = [found(watermarker, imprint(watermarker, audio, long_chips)) for audio in real]
        # The same, period by period: each period of the long clone copied onto the same period of
        # the recording (its sync cells from the average), so the payload cells keep, in every
        # period, the signs the clone had there.
        keep = np.abs(total + long_sums) >= np.quantile(np.abs(total + long_sums), 1.0 - params.sync_fraction)
        per_period = np.where(keep[None], np.sign(total + long_sums)[None], long_periods)
        period_copies = [found(watermarker, imprint(watermarker, audio, per_period)) for audio in real]
        row = {
            "clones": count,
            "sync_sign_agreement": agreement,
            "stripped_windows_found": sum(h for h, _, _, _ in strip_hits) / sum(n for _, n, _, _ in strip_hits),
            "stripped_clips_found": sum(p for _, _, p, _ in strip_hits) / len(strip_hits),
            "strip_change_db_mean": float(np.mean(change_db)),
            "forged_windows_found": sum(h for h, _, _, _ in forged) / sum(n for _, n, _, _ in forged),
            "forged_clips_found": sum(p for _, _, p, _ in forged) / len(forged),
            "forged_clips_with_payload": sum(r is not None for _, _, _, r in forged) / len(forged),
            "payload_copy_clips_found": sum(p for _, _, p, _ in copied) / len(copied),
            "payload_copy_clips_with_payload": sum(r is not None for _, _, _, r in copied) / len(copied),
            **copy_shares("long_clone_copy", long_copies, long_payload),
            **copy_shares("long_clone_period_copy", period_copies, long_payload),
            "stripped_clips_with_payload": sum(r is not None for _, _, _, r in strip_hits) / len(strip_hits),
        }
        rows.append(row)
        print(" ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()), flush=True)
    summary = {
        "machine": f"{platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "pool_clips": len(pool),
        "targets": len(targets),
        "forged_recordings": len(real),
        "long_clone_s": round(long_clone.duration_s, 1),
        "targets_unattacked_windows_found": sum(h for h, _, _, _ in baseline) / sum(n for _, n, _, _ in baseline),
        "targets_unattacked_payload_read": sum(r is not None for _, _, _, r in baseline) / len(baseline),
        "rows": rows,
    }
    emit_json(summary, args.output)


if __name__ == "__main__":
    main()
