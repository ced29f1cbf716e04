"""Raising a clip's noise floor with coloured noise (:func:`raise_floor`), in numpy.

One step, used twice: the data builder's channel augmentation raises every training clip's
floor (:mod:`services.detector.dataset.augment`), and the service raises a clip's floor to the
level a model asks for (``input_floor_dbfs``) before scoring it. No torch here: the service
imports it.
"""

from __future__ import annotations

import numpy as np

from shared.audio import frame_levels_db


def coloured_noise(rng: np.random.Generator, num_samples: int, exponent: float) -> np.ndarray:
    """Unit-RMS noise with a 1/f^exponent power spectrum (0 white, 1 pink, 2 brown)."""
    spectrum = rng.standard_normal(num_samples // 2 + 1) + 1j * rng.standard_normal(num_samples // 2 + 1)
    freqs = np.fft.rfftfreq(num_samples)
    freqs[0] = freqs[1] if num_samples > 1 else 1.0
    spectrum *= freqs ** (-exponent / 2.0)
    noise = np.fft.irfft(spectrum, n=num_samples)
    rms = float(np.sqrt(np.mean(noise**2))) or 1.0
    return (noise / rms).astype(np.float32)


def floor_level_db(samples: np.ndarray, frame: int = 320) -> float:
    """The recording's noise floor: 5th percentile of 20 ms frame levels (dBFS)."""
    if len(samples) < frame:
        return -120.0
    return float(np.percentile(frame_levels_db(samples, frame, floor_power=1e-12), 5))


def raise_floor(samples: np.ndarray, rng: np.random.Generator, target_db: float) -> np.ndarray:
    """Add coloured noise so the noise floor reaches ``target_db`` (dBFS).

    Noise is added up to the target, not on top of whatever floor the clip has, so a clip with
    digital silence (synthetic speech) and a clip with a recorded room tone end up with the same
    floor. A clip whose own floor is already higher gets a little noise only (a tenth of the
    target power), so no clip is left without any.
    """
    own = 10 ** (floor_level_db(samples) / 10)
    target = 10 ** (target_db / 10)
    added = max(target - own, 0.1 * target)
    noise = coloured_noise(rng, len(samples), float(rng.uniform(0.0, 2.0)))
    return samples + noise * np.float32(np.sqrt(added))
