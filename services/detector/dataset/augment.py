"""Channel augmentation, drawn from ONE distribution for real and fake clips alike.

With a single real corpus, a detector's false alarms follow the recording channel; randomising
the channel (noise floor, additive noise, EQ, reverb, non-linear distortion, resampling, band
limits, telephone band, codec round trips) for both classes leaves the generator's artefacts as
the only label cue.
Every step is seeded by the caller's :class:`numpy.random.Generator`, so a clip's chain is
reproducible, and the chain is described as a short string for the manifest's ``augment`` column.
"""

from __future__ import annotations

import io

import numpy as np
import soundfile as sf
from scipy import signal

from services.detector.dataset.config import Augment
from services.detector.input_floor import coloured_noise, raise_floor
from shared.audio import Audio

_RATE_HZ = 16_000


def _active_rms(samples: np.ndarray) -> float:
    frame = 400
    count = len(samples) // frame
    if count == 0:
        return float(np.sqrt(np.mean(samples**2)) or 1e-6)
    power = np.mean(samples[: count * frame].reshape(count, frame) ** 2, axis=1)
    level = 10 * np.log10(np.maximum(power, 1e-20))
    active = power[level > level.max() - 40]
    return float(np.sqrt(np.mean(active)))


def add_noise(samples: np.ndarray, rng: np.random.Generator, snr_db: float, exponent: float) -> np.ndarray:
    noise = coloured_noise(rng, len(samples), exponent)
    scale = _active_rms(samples) / (10 ** (snr_db / 20))
    return samples + noise * np.float32(scale)


def random_eq(samples: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """A spectral tilt (±8 dB at 8 kHz) plus one peaking band (±6 dB), like a different microphone."""
    tilt_db = float(rng.uniform(-8, 8))  # dB per 8 kHz
    centre_hz = float(np.exp(rng.uniform(np.log(200), np.log(6000))))
    gain_db = float(rng.uniform(-6, 6))
    width_oct = float(rng.uniform(0.5, 2.0))
    spectrum = np.fft.rfft(samples)
    freqs = np.fft.rfftfreq(len(samples), d=1 / _RATE_HZ)
    octaves = np.log2(np.maximum(freqs, 1.0) / centre_hz)
    response_db = tilt_db * freqs / 8000 + gain_db * np.exp(-0.5 * (octaves / (width_oct / 2)) ** 2)
    out = np.fft.irfft(spectrum * 10 ** (response_db / 20), n=len(samples))
    return out.astype(np.float32), f"eq({tilt_db:+.0f}dB,{centre_hz:.0f}Hz{gain_db:+.0f}dB)"


def random_reverb(samples: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """A small room: exponentially decaying noise impulse response (RT60 0.15–0.6 s), mixed wet."""
    rt60_s = float(rng.uniform(0.15, 0.6))
    length = int(rt60_s * _RATE_HZ)
    t = np.arange(length) / _RATE_HZ
    response = rng.standard_normal(length) * np.exp(-6.9 * t / rt60_s)
    response[0] = 0.0
    response /= np.sqrt(np.sum(response**2)) or 1.0
    wet_db = float(rng.uniform(-18, -6))
    wet = signal.fftconvolve(samples, response)[: len(samples)]
    return (samples + wet * 10 ** (wet_db / 20)).astype(np.float32), f"reverb({rt60_s:.2f}s,{wet_db:.0f}dB)"


def _random_bands_fir(rng: np.random.Generator, num_taps: int = 63) -> np.ndarray:
    """An FIR filter passing one to three random bands (centres 150–7000 Hz, 0.3–2 octaves wide)."""
    taps = np.zeros(num_taps)
    for _ in range(int(rng.integers(1, 4))):
        centre_hz = float(np.exp(rng.uniform(np.log(150), np.log(7000))))
        half_width = 2 ** (float(rng.uniform(0.3, 2.0)) / 2)
        low_hz, high_hz = max(centre_hz / half_width, 50.0), min(centre_hz * half_width, 7900.0)
        taps += rng.uniform(0.3, 1.0) * signal.firwin(num_taps, [low_hz, high_hz], pass_zero=False, fs=_RATE_HZ)
    return taps


def distortion(samples: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """A non-linear device channel: harmonic distortion or soft clipping, sometimes with clicks.

    Either the square and cube of the signal, each through its own random band filter, are added
    at −35…−12 dB (the harmonics and intermodulation of a cheap microphone or preamp: RawBoost's
    "linear and non-linear convolutive noise"), or the signal is soft-clipped by a tanh with a
    random drive and asymmetry. Half the time signal-dependent impulses follow (RawBoost's
    "impulsive signal-dependent noise": 1–8 % of the samples scaled by up to ±30 %). The result
    keeps the input's RMS level.
    """
    peak = float(np.max(np.abs(samples))) if samples.size else 0.0
    if peak == 0.0:
        return samples, "distort(silent)"
    x = samples.astype(np.float64) / peak
    if rng.random() < 0.5:
        level_db = float(rng.uniform(-35, -12))
        y = x.copy()
        for order in (2, 3):
            harmonic = signal.lfilter(_random_bands_fir(rng), [1.0], x**order)
            scale = np.sqrt(np.mean(x**2) / (np.mean(harmonic**2) + 1e-12))
            y += harmonic * scale * 10 ** ((level_db + rng.uniform(-6, 0)) / 20)
        name = f"distort(harm{level_db:.0f}dB)"
    else:
        drive = float(np.exp(rng.uniform(np.log(1.5), np.log(8.0))))
        bias = float(rng.uniform(-0.2, 0.2))
        y = np.tanh(drive * (x + bias)) - np.tanh(drive * bias)
        name = f"distort(clip{drive:.1f},{bias:+.2f})"
    if rng.random() < 0.5:
        share = float(rng.uniform(0.01, 0.08))
        hit = rng.random(len(y)) < share
        y[hit] += y[hit] * rng.uniform(-0.3, 0.3, int(hit.sum()))
        name += f"+clicks({share:.0%})"
    y *= np.sqrt(np.mean(samples.astype(np.float64) ** 2) / (np.mean(y**2) + 1e-20))
    return y.astype(np.float32), name


#: The gate's analysis frame: 5 ms at 16 kHz.
_GATE_FRAME = 80


def noise_gate(samples: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """A noise gate, as edited prompts, podcasts and broadcast speech get: wherever the level stays
    under a threshold 25–45 dB below the speech's active level for longer than a hold of
    20–120 ms, the signal is muted to digital silence (one 5 ms frame of fade at each edge).

    Real speech that went through one is taken for synthesis by a model that never saw it
    (docs/detector.md, "What production processing does to real speech"); drawn for both classes
    alike, it stops being a cue.
    """
    threshold_db = float(rng.uniform(25.0, 45.0))
    hold_frames = round(float(rng.uniform(0.02, 0.12)) * _RATE_HZ / _GATE_FRAME)
    count = -(-len(samples) // _GATE_FRAME)
    if count == 0:
        return samples, f"gate({threshold_db:.0f}dB)"
    padded = np.pad(samples.astype(np.float64), (0, count * _GATE_FRAME - len(samples)))
    level_db = 10 * np.log10(np.mean(padded.reshape(count, _GATE_FRAME) ** 2, axis=1) + 1e-20)
    loud = level_db > 20 * np.log10(_active_rms(samples)) - threshold_db
    # Open from one frame before the sound (a gate's look-ahead) to the hold after it.
    is_open = np.convolve(loud, np.ones(hold_frames + 1), mode="full")[:count] > 0
    is_open[:-1] |= loud[1:]
    centres = (np.arange(count) + 0.5) * _GATE_FRAME
    gain = np.interp(np.arange(len(samples)), centres, is_open.astype(np.float64))
    return (samples * gain).astype(np.float32), f"gate({threshold_db:.0f}dB)"


def _resample(samples: np.ndarray, from_hz: int, to_hz: int) -> np.ndarray:
    return Audio(samples, from_hz).resample(to_hz).samples


def resample_round_trip(samples: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    via_hz = int(rng.choice([11_025, 12_000, 22_050, 24_000, 44_100]))
    back = _resample(_resample(samples, _RATE_HZ, via_hz), via_hz, _RATE_HZ)
    return back[: len(samples)], f"resample({via_hz})"


def lowpass(samples: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    cutoff_hz = float(rng.uniform(3500, 7500))
    sos = signal.butter(8, cutoff_hz, btype="lowpass", fs=_RATE_HZ, output="sos")
    return signal.sosfiltfilt(sos, samples).astype(np.float32), f"lowpass({cutoff_hz:.0f})"


def telephone(samples: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """300–3400 Hz band and an 8 kHz round trip (optionally through the 8 kHz mu-law codec)."""
    sos = signal.butter(6, [300, 3400], btype="bandpass", fs=_RATE_HZ, output="sos")
    narrow = _resample(signal.sosfiltfilt(sos, samples).astype(np.float32), _RATE_HZ, 8_000)
    name = "telephone"
    if rng.random() < 0.5:
        narrow = _codec_round_trip(narrow, 8_000, "WAV", "ULAW")
        name += "(ulaw)"
    return _resample(narrow, 8_000, _RATE_HZ)[: len(samples)], name


def _codec_round_trip(samples: np.ndarray, rate_hz: int, fmt: str, subtype: str, **kwargs: float) -> np.ndarray:
    buffer = io.BytesIO()
    sf.write(buffer, np.clip(samples, -1, 1), rate_hz, format=fmt, subtype=subtype, **kwargs)
    buffer.seek(0)
    decoded, _ = sf.read(buffer, dtype="float32", always_2d=True)
    return decoded.mean(axis=1)


def codec(samples: np.ndarray, rng: np.random.Generator, codecs: list[str]) -> tuple[np.ndarray, str]:
    """An mp3 / Ogg Vorbis / Opus encode-decode at a random quality; aligned to the input length."""
    choice = str(rng.choice(codecs))
    # libsndfile's compression level: 0 = best quality/highest bit rate, 1 = smallest.
    level = float(rng.uniform(0.2, 0.95))
    if choice == "mp3":
        decoded = _codec_round_trip(samples, _RATE_HZ, "MP3", "MPEG_LAYER_III", compression_level=level)
    elif choice == "ogg":
        decoded = _codec_round_trip(samples, _RATE_HZ, "OGG", "VORBIS", compression_level=level)
    else:
        # Opus runs at 48 kHz internally; libsndfile accepts 16 kHz input.
        decoded = _codec_round_trip(samples, _RATE_HZ, "OGG", "OPUS", compression_level=level)
    decoded = _align(samples, decoded)
    return decoded, f"{choice}(q{level:.2f})"


def _align(reference: np.ndarray, decoded: np.ndarray) -> np.ndarray:
    """Undo a codec's start delay (found by cross-correlation, ≤ 50 ms) and match the length."""
    max_lag = min(800, len(decoded) - 1, len(reference) - 1)
    if max_lag > 0:
        head = min(len(reference), 16_000)
        corr = signal.correlate(decoded[: head + max_lag], reference[:head], mode="valid")
        lag = int(np.argmax(np.abs(corr[: max_lag + 1])))
        decoded = decoded[lag:]
    if len(decoded) < len(reference):
        decoded = np.pad(decoded, (0, len(reference) - len(decoded)))
    return decoded[: len(reference)].astype(np.float32)


def augment(
    audio: Audio,
    rng: np.random.Generator,
    config: Augment,
    *,
    distortion_rng: np.random.Generator | None = None,
    gate_rng: np.random.Generator | None = None,
) -> tuple[Audio, str]:
    """Apply a random channel to 16 kHz ``audio``; returns the result and its description.

    ``distortion_rng`` and ``gate_rng`` (default: ``rng``) draw the distortion step and the noise
    gate alone, so a caller can turn either on without changing any other step of any clip.

    The order is physical: room and microphone (reverb, EQ, distortion), background noise, the
    production's noise gate, then the transmission (resampling, band limit or telephone, codec).
    The noise floor is raised to a random target level (:func:`raise_floor`; unless
    ``config.floor_dbfs`` is None) so that neither digital silence (common in synthetic speech) nor
    a recording's room tone is a label cue; the gate, when drawn, brings digital silence back in
    the pauses of both classes alike.
    """
    if audio.sample_rate_hz != _RATE_HZ:
        audio = audio.resample(_RATE_HZ)
    x = audio.samples.astype(np.float32)
    steps: list[str] = []
    if config.reverb_p and rng.random() < config.reverb_p:
        x, name = random_reverb(x, rng)
        steps.append(name)
    if config.eq_p and rng.random() < config.eq_p:
        x, name = random_eq(x, rng)
        steps.append(name)
    distortion_rng = rng if distortion_rng is None else distortion_rng
    if config.distortion_p and distortion_rng.random() < config.distortion_p:
        x, name = distortion(x, distortion_rng)
        steps.append(name)
    if config.floor_dbfs is not None:
        x = raise_floor(x, rng, float(rng.uniform(*config.floor_dbfs)))
    if config.noise_p and rng.random() < config.noise_p:
        snr_db = float(rng.uniform(*config.noise_snr_db))
        x = add_noise(x, rng, snr_db, float(rng.uniform(0.0, 2.0)))
        steps.append(f"noise({snr_db:.0f}dB)")
    gate_rng = rng if gate_rng is None else gate_rng
    if config.gate_p and gate_rng.random() < config.gate_p:
        x, name = noise_gate(x, gate_rng)
        steps.append(name)
    if config.resample_p and rng.random() < config.resample_p:
        x, name = resample_round_trip(x, rng)
        steps.append(name)
    if config.telephone_p and rng.random() < config.telephone_p:
        x, name = telephone(x, rng)
        steps.append(name)
    elif config.lowpass_p and rng.random() < config.lowpass_p:
        x, name = lowpass(x, rng)
        steps.append(name)
    if config.codec_p and config.codecs and rng.random() < config.codec_p:
        x, name = codec(x, rng, list(config.codecs))
        steps.append(name)
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    if peak > 0.99:
        x = x * np.float32(0.99 / peak)
    return Audio(x, _RATE_HZ), "+".join(steps) or "none"
