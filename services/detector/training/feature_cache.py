"""Per-clip training features on disk, so a feature is computed once per clip and extractor."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from services.detector.inference import DETECTION_LOAD_POLICY
from services.detector.training.manifest import ManifestRow
from shared.audio import load_audio
from shared.files import write_atomic
from shared.offline_models import cache_dir


class FeatureCache:
    """Per-clip feature arrays on disk, keyed by the extractor and the file's content (so moved or
    rebuilt-but-identical clips are not recomputed)."""

    def __init__(self, extractor_id: str, root: Path | None = None) -> None:
        self.root = (root or cache_dir() / "features") / extractor_id
        self.root.mkdir(parents=True, exist_ok=True)

    def _key(self, path: Path) -> Path:
        return self.root / f"{hashlib.sha1(path.read_bytes()).hexdigest()}.npy"

    def arrays(
        self,
        rows: Sequence[ManifestRow],
        extract: Callable,
        description: str = "features",
        dtype: type[np.floating] = np.float32,
    ) -> list[np.ndarray]:
        """Each row's feature array (stored as ``dtype``), computed by ``extract(audio)`` where missing."""
        arrays = []
        for row in tqdm(rows, desc=description, unit="clip", leave=False):
            key = self._key(row.path)
            if key.exists():
                arrays.append(np.load(key))
                continue
            value = np.asarray(extract(load_audio(row.path, DETECTION_LOAD_POLICY)), dtype=dtype)
            # Two trainings may compute the same clip at once (builds share identical clips).
            write_atomic(key, lambda temp, value=value: np.save(temp, value))
            arrays.append(value)
        return arrays

    def features(self, rows: Sequence[ManifestRow], extract: Callable, description: str = "features") -> np.ndarray:
        """The rows' float32 features stacked (each clip's array has the same shape)."""
        return np.stack(self.arrays(rows, extract, description))
