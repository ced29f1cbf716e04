"""Channel matching: give a clone the recording channel of its reference.

A synthesizer speaks into a perfect, silent studio; the reference was recorded through some
microphone, in some room. The GE2E speaker embedding (and a listener) hears both the voice and
the channel, so a clean clone of a LibriSpeech reader sounds like the reader on a different
day. After synthesis, :class:`ChannelMatcher` applies the reference's

* **long-term spectrum** — a linear-phase EQ that moves the clone's long-term average spectrum
  (speech frames only) toward the reference's, smoothed over a third of an octave and limited
  to ± ``max_gain_db``; and its
* **room tone** — noise stitched from the reference's quietest frames (sine-windowed
  overlap-add of random frames, so it never loops audibly), added at the reference's own
  speech-to-noise ratio.

What it changes, measured on LibriSpeech test-other: docs/cloning.md, "The channel stage".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import signal

from shared.audio import Audio, Decibels, Hertz, frame_levels_db

_FFT_SIZE = 1024
_NOISE_FRAME_S = 0.05
#: Frames within this many dB of the loudest frame count as speech for the long-term spectrum.
_SPEECH_RANGE_DB = 35.0


@dataclass(frozen=True)
class ChannelProfile:
    """What :class:`ChannelMatcher` keeps of a reference recording."""

    #: Frequencies of :attr:`spectrum_db`, in Hz.
    frequencies_hz: np.ndarray
    #: Long-term average power spectrum of the reference's speech frames, in dB.
    spectrum_db: np.ndarray
    #: The reference's quietest frames (rows), each ``_NOISE_FRAME_S`` long, at :attr:`sample_rate_hz`.
    noise_frames: np.ndarray
    sample_rate_hz: Hertz
    #: Speech level (90th percentile of frame levels) over the room-tone level, in dB.
    snr_db: Decibels


def _long_term_spectrum(samples: np.ndarray, sample_rate_hz: Hertz) -> tuple[np.ndarray, np.ndarray]:
    """(frequencies in Hz, mean power in dB) over the frames within ``_SPEECH_RANGE_DB`` of the loudest."""
    frequencies, _, stft = signal.stft(samples, sample_rate_hz, nperseg=_FFT_SIZE, noverlap=_FFT_SIZE * 3 // 4)
    power = np.abs(stft) ** 2
    frame_db = 10.0 * np.log10(power.sum(axis=0) + 1e-12)
    speech = frame_db > frame_db.max() - _SPEECH_RANGE_DB
    return frequencies, 10.0 * np.log10(power[:, speech].mean(axis=1) + 1e-12)


def _smooth_octaves(frequencies_hz: np.ndarray, values: np.ndarray, width_octaves: float) -> np.ndarray:
    smoothed = np.empty_like(values)
    half = 2.0 ** (width_octaves / 2.0)
    for index, frequency in enumerate(frequencies_hz):
        band = (frequencies_hz >= frequency / half) & (frequencies_hz <= frequency * half)
        smoothed[index] = values[band].mean() if band.any() else values[index]
    return smoothed


class ChannelMatcher:
    """Fits a :class:`ChannelProfile` on reference clips and applies it to synthetic speech.

    Parameters
    ----------
    max_gain_db
        Largest boost or cut of the EQ, in dB (the curve is limited, not rescaled).
    smoothing_octaves
        Width of the smoothing of the EQ curve, in octaves.
    min_snr_db
        The room tone is never added louder than this far below the speech.
    max_snr_db
        References cleaner than this get no room tone (it would be inaudible).
    """

    def __init__(
        self,
        max_gain_db: Decibels = 12.0,
        smoothing_octaves: float = 1.0 / 3.0,
        min_snr_db: Decibels = 10.0,
        max_snr_db: Decibels = 70.0,
    ) -> None:
        self.max_gain_db = max_gain_db
        self.smoothing_octaves = smoothing_octaves
        self.min_snr_db = min_snr_db
        self.max_snr_db = max_snr_db

    def profile(self, clips: Sequence[Audio]) -> ChannelProfile:
        """The channel of ``clips`` (one speaker's references, resampled to the first clip's rate)."""
        if not clips:
            raise ValueError("a channel profile needs at least one reference clip")
        rate = clips[0].sample_rate_hz
        samples = np.concatenate([clip.resample(rate).samples for clip in clips]).astype(np.float64)
        frequencies, spectrum_db = _long_term_spectrum(samples, rate)
        frame = round(_NOISE_FRAME_S * rate)
        hop = frame // 2
        frames = np.lib.stride_tricks.sliding_window_view(samples, frame)[::hop]
        levels = frame_levels_db(samples, frame, hop, floor_power=1e-12)
        quiet = levels <= np.percentile(levels, 10)
        snr_db = float(np.percentile(levels, 90) - np.mean(levels[quiet]))
        return ChannelProfile(frequencies, spectrum_db, frames[quiet].astype(np.float32), rate, snr_db)

    # -- application ------------------------------------------------------------------------
    def equalizer_db(self, audio: Audio, profile: ChannelProfile) -> tuple[np.ndarray, np.ndarray]:
        """(frequencies in Hz up to ``audio``'s Nyquist, EQ gain in dB) that moves ``audio`` toward ``profile``."""
        frequencies, own_db = _long_term_spectrum(audio.samples.astype(np.float64), audio.sample_rate_hz)
        target_db = np.interp(frequencies, profile.frequencies_hz, profile.spectrum_db)
        gain_db = _smooth_octaves(frequencies, target_db - own_db, self.smoothing_octaves)
        # Outside what the reference can tell (its band edges), hold the gain of the nearest edge.
        low, high = 60.0, 0.95 * min(profile.sample_rate_hz, audio.sample_rate_hz) / 2.0
        gain_db[frequencies < low] = gain_db[np.searchsorted(frequencies, low)]
        gain_db[frequencies > high] = gain_db[np.searchsorted(frequencies, high) - 1]
        # Level is the loudness stage's job: centre the curve on the speech band.
        speech_band = (frequencies >= 300.0) & (frequencies <= 3000.0)
        gain_db -= np.median(gain_db[speech_band])
        return frequencies, np.clip(gain_db, -self.max_gain_db, self.max_gain_db)

    def room_tone(self, profile: ChannelProfile, duration_s: float, seed: int) -> Audio:
        """``duration_s`` of the reference's room tone: random quiet frames, sine-window overlap-added."""
        frame = profile.noise_frames.shape[1]
        hop = frame // 2
        window = np.sin(np.pi * (np.arange(frame) + 0.5) / frame).astype(np.float32)  # w² overlaps to 1
        count = int(np.ceil(duration_s * profile.sample_rate_hz / hop)) + 2
        rng = np.random.default_rng(seed)
        picks = rng.integers(0, len(profile.noise_frames), size=count)
        track = np.zeros(hop * (count + 1), dtype=np.float32)
        for index, pick in enumerate(picks):
            track[index * hop : index * hop + frame] += window * profile.noise_frames[pick]
        return Audio(track[hop:], profile.sample_rate_hz)

    def apply(self, audio: Audio, profile: ChannelProfile, seed: int = 0) -> Audio:
        """``audio`` through the reference's channel: EQ, then room tone at the reference's SNR."""
        if audio.num_samples < _FFT_SIZE:
            return audio
        frequencies, gain_db = self.equalizer_db(audio, profile)
        taps = signal.firwin2(_FFT_SIZE + 1, frequencies / (audio.sample_rate_hz / 2.0), 10.0 ** (gain_db / 20.0))
        shaped = signal.fftconvolve(audio.samples.astype(np.float64), taps, mode="same")
        snr_db = float(np.clip(profile.snr_db, self.min_snr_db, None))
        if profile.snr_db < self.max_snr_db:
            tone = self.room_tone(profile, audio.duration_s, seed).resample(audio.sample_rate_hz).samples
            tone = tone[: len(shaped)].astype(np.float64)
            frame = round(_NOISE_FRAME_S * audio.sample_rate_hz)
            speech_db = np.percentile(frame_levels_db(shaped, frame, floor_power=1e-12), 90)
            tone_db = 10.0 * np.log10(np.mean(tone**2) + 1e-12)
            shaped[: len(tone)] += tone * 10.0 ** ((speech_db - snr_db - tone_db) / 20.0)
        return Audio(shaped.astype(np.float32), audio.sample_rate_hz)
