"""Making one clip of a build: its window (a real recording's, or a generator's speech, copy
or clone, cached for fakes), then the channel transfer and augmentation that both classes share,
and its manifest row. Every random draw is seeded by the clip's id (and attempt)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from services.detector.dataset.augment import augment
from services.detector.dataset.build.items import WINDOW_KINDS, BuildError, Item, Sources, item_rng, write_json
from services.detector.dataset.build.real import RealSpeech
from services.detector.dataset.config import BuildConfig
from shared.audio import Audio, AudioError, LoadPolicy, decode_audio, load_audio
from shared.channel import ChannelMatcher, ChannelProfile
from shared.files import write_atomic
from shared.seeds import stable_int

#: Attempts per fake clip before it is given up (a TTS failure, a too-short result).
_ATTEMPTS = 3


class ClipMaker:
    """Makes clips of ``config`` from ``real`` speech and the build's sources; fake windows are
    cached under ``window_cache_dir`` (keyed by :attr:`window_fingerprints`, set per run)."""

    def __init__(
        self, config: BuildConfig, policy: LoadPolicy, real: RealSpeech, window_cache_dir: Path, warnings: list[str]
    ) -> None:
        self.config = config
        self.policy = policy
        self.real = real
        self.window_cache_dir = window_cache_dir
        self.warnings = warnings
        self.channel_matcher = ChannelMatcher()
        self._channel_profiles: dict[int, ChannelProfile] = {}
        #: Per system, the fingerprint of its cached windows (:func:`fingerprint.fingerprints`).
        self.window_fingerprints: dict[str, str] = {}

    def _crop(self, audio: Audio, duration_s: float, rng: np.random.Generator) -> tuple[Audio, float]:
        if audio.duration_s <= duration_s:
            return audio, 0.0
        start = float(rng.uniform(0.0, audio.duration_s - duration_s))
        return audio.crop(start, duration_s), start

    def _prepare(self, raw: Audio) -> Audio:
        return load_audio(raw.to_wav_bytes(), self.policy)

    def make_item(self, item: Item, sources: Sources, attempt: int) -> tuple[Audio, dict[str, str]]:
        """The window audio (before augmentation) and its manifest fields."""
        rng = item_rng(self.config.seed, "content", item.item_id, attempt)
        recordings = sources.recordings
        if item.kind in WINDOW_KINDS:
            assert item.recording is not None
            real = recordings[item.recording]
            audio = self.real.load(item.recording, recordings)
            assert audio is not None
            window = audio.crop(item.start_s, item.duration_s)
            return window, {
                "speaker": real.recording.speaker,
                "source": f"{real.key}@{item.start_s:.2f}",
                "transcript": "",
            }
        generator = sources.generators[item.system]
        if item.kind == "copy":
            index, audio = self._random_real(item.split, sources, rng)
            window, start = self._crop(audio, item.duration_s, rng)
            # The registry's factories return untyped generators; the kind decides the method.
            copy = self._prepare(generator.copy(window, rng))  # type: ignore[attr-defined]
            return copy, {
                "speaker": recordings[index].recording.speaker,
                "source": f"{recordings[index].key}@{start:.2f}",
                "transcript": "",
            }
        sentences = sources.bank.draw(rng, 6)
        audio = None
        # Start with about enough text (~14 characters a second) so slow engines seldom run twice.
        first = 1
        while first < len(sentences) and sum(len(s.text) for s in sentences[:first]) < 14 * item.duration_s:
            first += 1
        for count in range(first, len(sentences) + 1):
            text = " ".join(s.text for s in sentences[:count])
            if item.kind == "clone":
                index, reference = self._random_real(item.split, sources, rng)
                speaker = "clone:" + recordings[index].recording.speaker
                raw = generator.clone(reference, text)  # type: ignore[attr-defined]  # clone kinds have it
            else:
                raw, speaker = generator.speak(text, rng)  # type: ignore[attr-defined]  # text kinds have it
            audio = self._prepare(raw)
            if audio.duration_s >= item.duration_s:
                break
        assert audio is not None
        window, _ = self._crop(audio, item.duration_s, rng)
        return window, {
            "speaker": speaker,
            "source": "vctk:" + "|".join(s.key for s in sentences[:count]),
            "transcript": text,
        }

    def cached_window(self, item: Item, sources: Sources, attempt: int) -> tuple[Audio, dict[str, str]]:
        """:meth:`make_item`, with fake windows kept in ``cache/windows/`` (slow engines run once)."""
        if item.kind in WINDOW_KINDS:
            return self.make_item(item, sources, attempt)
        wav_path = self.window_cache_dir / item.relpath
        side_path = wav_path.with_suffix(".json")
        fingerprint = self.window_fingerprints[item.system]
        if attempt == 0 and wav_path.exists() and side_path.exists():
            try:
                sidecar = json.loads(side_path.read_text(encoding="utf-8"))
                if sidecar.get("fingerprint") == fingerprint:
                    return decode_audio(wav_path), sidecar["fields"]
            except (json.JSONDecodeError, KeyError, AudioError):
                pass  # damaged: make it again
        window, fields = self.make_item(item, sources, attempt)
        write_atomic(wav_path, lambda temp: window.write(temp, subtype="FLOAT"))
        sidecar = {"fingerprint": fingerprint, "fields": fields}
        write_atomic(side_path, lambda temp: write_json(temp, sidecar))
        return window, fields

    def _random_real(self, split: str, sources: Sources, rng: np.random.Generator) -> tuple[int, Audio]:
        pool, chance = sources.by_split.get(split, ([], None))
        if not pool:
            raise BuildError(f"split {split}: no real recordings to copy or clone from")
        for _ in range(10):
            index = int(rng.choice(pool)) if chance is None else pool[int(rng.choice(len(pool), p=chance))]
            audio = self.real.load(index, sources.recordings)
            if audio is not None:
                return index, audio
        raise BuildError(f"split {split}: no readable real recordings")

    def finish(self, window: Audio, item: Item, sources: Sources) -> tuple[Audio, str]:
        steps = []
        transfer_p = self.config.augment.channel_transfer_p
        # Its own random stream, so turning the transfer on leaves every other draw unchanged.
        channel_rng = item_rng(self.config.seed, "channel", item.item_id)
        if item.kind == "text" and transfer_p and channel_rng.random() < transfer_p:
            index, real_audio = self._random_real(item.split, sources, channel_rng)
            if index not in self._channel_profiles:
                self._channel_profiles[index] = self.channel_matcher.profile([real_audio])
            window = self.channel_matcher.apply(window, self._channel_profiles[index], seed=stable_int(item.item_id))
            steps.append(f"channel({sources.recordings[index].recording.speaker})")
        rng = item_rng(self.config.seed, "augment", item.item_id)
        # Distortion and the gate draw from their own streams: turning one on changes only the
        # clips it hits.
        augmented, description = augment(
            window,
            rng,
            self.config.augment,
            distortion_rng=item_rng(self.config.seed, "distortion", item.item_id),
            gate_rng=item_rng(self.config.seed, "gate", item.item_id),
        )
        if description != "none" or not steps:
            steps.append(description)
        return self._prepare(augmented), "+".join(steps)

    def make_row(self, item: Item, sources: Sources, cached: bool = True) -> tuple[Audio, dict[str, str]] | None:
        last_error: Exception | None = None
        make_window = self.cached_window if cached else self.make_item
        for attempt in range(_ATTEMPTS):
            try:
                window, fields = make_window(item, sources, attempt)
                audio, description = self.finish(window, item, sources)
            except (AudioError, ValueError, RuntimeError, OSError) as error:
                if isinstance(error, BuildError):
                    raise
                last_error = error
                continue
            row = {
                "path": item.relpath,
                "label": "bonafide" if item.kind == "real" else "spoof",
                "speaker": fields["speaker"],
                "system": item.system,
                "family": item.family,
                "split": item.split,
                "source": fields["source"],
                "augment": description,
                "duration_s": f"{audio.duration_s:.3f}",
                "sample_rate": str(audio.sample_rate_hz),
                "transcript": fields["transcript"],
            }
            return audio, row
        self.warnings.append(f"{item.item_id}: gave up after {_ATTEMPTS} attempts: {last_error}")
        return None
