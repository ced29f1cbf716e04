"""The judge's speakers: public many-speaker speech from the source catalogue, as cached features.

Each source is a catalogue entry (``configs/detector/sources.toml``) read from a local snapshot at
its pinned commit (:mod:`shared.sources`); only its real (``bonafide``) clips are used. Features
are computed once per source and front end and cached as one ``.npz`` under the cache folder.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import numpy as np
from tqdm import tqdm

from services.cloner.judge.front_end import FrontEnd
from shared.audio import AudioError, decode_audio
from shared.files import write_atomic
from shared.seeds import stable_int
from shared.sources import SnapshotStore, Source, SourceError


@dataclass(frozen=True)
class Utterance:
    """One recording's features and who spoke it (``speaker`` is unique across sources)."""

    speaker: str
    source: str
    path: str
    frames: np.ndarray  # (frames, n_mels) float32
    frame_hop_s: float = 0.01

    @property
    def duration_s(self) -> float:
        return len(self.frames) * self.frame_hop_s


def _cache_path(cache_dir: Path, source: Source, front_end: FrontEnd) -> Path:
    settings = json.dumps(asdict(front_end), sort_keys=True)
    digest = hashlib.sha1(f"{source.repository}@{source.commit}\n{settings}".encode()).hexdigest()[:12]
    return cache_dir / f"{source.name}-{digest}.npz"


def source_utterances(source: Source, store: SnapshotStore, front_end: FrontEnd, cache_dir: Path) -> list[Utterance]:
    """Every readable real clip of ``source`` as an :class:`Utterance` (features cached on disk)."""
    cache = _cache_path(cache_dir, source, front_end)
    if not cache.is_file():
        clips = [clip for clip in store.clips(source) if clip.label == "bonafide"]
        if not clips:
            raise SourceError(f"source {source.name}: no real (bonafide) clips for the speaker judge")
        paths = store.extract(clips)
        frames, speakers, names = [], [], []
        for clip, path in tqdm(list(zip(clips, paths, strict=True)), desc=f"judge features {source.name}"):
            try:
                audio = decode_audio(path)
            except AudioError:
                continue  # a corrupt file in a public repository: skipped, counted in the report
            if audio.duration_s < 0.5:
                continue
            frames.append(front_end.frames(audio))
            speakers.append(f"{source.name}/{clip.speaker}")
            names.append(clip.repo_path)
        lengths = np.array([len(f) for f in frames])
        write_atomic(
            cache,
            partial(np.savez, frames=np.concatenate(frames), lengths=lengths, speakers=speakers, paths=names),
        )
    with np.load(cache) as saved:
        # Each access to an npz member reads it again: read the frames once, then slice views.
        frames, lengths = saved["frames"], saved["lengths"]
        speakers, names = saved["speakers"], saved["paths"]
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    return [
        Utterance(str(speaker), source.name, str(path), frames[start:stop], front_end.hop_s)
        for speaker, path, start, stop in zip(speakers, names, bounds[:-1], bounds[1:], strict=True)
    ]


def merge_short(utterances: Sequence[Utterance], min_duration_s: float) -> list[Utterance]:
    """Join each speaker's short clips (one-word commands) into utterances of ``min_duration_s`` or more.

    A speaker's clips are joined in path order; a remainder shorter than ``min_duration_s`` joins the
    last full utterance, and a speaker with too little speech in all is dropped.
    """
    by_speaker: dict[str, list[Utterance]] = defaultdict(list)
    for utterance in sorted(utterances, key=lambda u: (u.speaker, u.path)):
        by_speaker[utterance.speaker].append(utterance)
    merged: list[Utterance] = []
    for speaker, clips in by_speaker.items():
        groups: list[list[Utterance]] = [[]]
        for clip in clips:
            groups[-1].append(clip)
            if sum(c.duration_s for c in groups[-1]) >= min_duration_s:
                groups.append([])
        if groups[-1] and len(groups) > 1:
            remainder = groups.pop()
            groups[-1] += remainder
        for group in groups:
            if group and sum(c.duration_s for c in group) >= min_duration_s:
                merged.append(
                    Utterance(
                        speaker=speaker,
                        source=group[0].source,
                        path="+".join(c.path for c in group),
                        frames=np.concatenate([c.frames for c in group]),
                        frame_hop_s=group[0].frame_hop_s,
                    )
                )
    return merged


def split_speakers(
    utterances: Sequence[Utterance], held_out_fraction: float, seed: int
) -> tuple[list[Utterance], list[Utterance]]:
    """``(train, held_out)``: whole speakers, chosen by a stable hash (the same on every machine)."""
    threshold = held_out_fraction * 2**64
    train: list[Utterance] = []
    held_out: list[Utterance] = []
    for utterance in utterances:
        (held_out if stable_int(seed, utterance.speaker) < threshold else train).append(utterance)
    return train, held_out


def halve_single_recordings(utterances: Sequence[Utterance]) -> list[Utterance]:
    """Give a speaker with one recording two: its first and second half (same session, so easier)."""
    count: dict[str, int] = defaultdict(int)
    for utterance in utterances:
        count[utterance.speaker] += 1
    result: list[Utterance] = []
    for utterance in utterances:
        if count[utterance.speaker] > 1:
            result.append(utterance)
            continue
        middle = len(utterance.frames) // 2
        for part, frames in (("a", utterance.frames[:middle]), ("b", utterance.frames[middle:])):
            result.append(
                Utterance(
                    utterance.speaker, utterance.source, f"{utterance.path}#{part}", frames, utterance.frame_hop_s
                )
            )
    return result
