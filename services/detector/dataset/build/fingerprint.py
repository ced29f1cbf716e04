"""Fingerprints of a build's settings: per system, a hash of everything that shapes its clips'
content, kept in each clip's sidecar so that a re-run reuses exactly the clips still valid."""

from __future__ import annotations

import hashlib
import json

from services.detector.dataset.config import BuildConfig
from shared.audio import LoadPolicy

#: Bump when the making of clips changes in code, so that old clips are not reused.
_CONTENT_VERSION = 1


def fingerprints(
    config: BuildConfig, policy: LoadPolicy, generators: dict[str, object] | None = None, window_only: bool = False
) -> dict[str, str]:
    """Per system (and ``bonafide``), a hash of every setting that shapes its clips' content.

    A finished clip is reused only when its sidecar carries the same fingerprint, so changing
    the windows, the augmentation or a system's options remakes exactly the affected clips.
    With ``window_only`` the augmentation is left out: the fingerprint of the cached fake
    windows (``cache/windows/``), which an augmentation change does not invalidate.
    """
    shared = {
        "seed": config.seed,
        # How many windows there are does not shape any clip's content: growing the count
        # reuses every clip already made (window and fake ids are seeded one by one).
        "windows": config.windows.model_dump(mode="json", exclude={"max_per_clip", "coverage"}),
        "policy": repr(policy),
        "version": _CONTENT_VERSION,
        # Fakes copy, clone and take channels from the real recordings: another pool draws
        # other sources for the same clip ids, so a change there remakes the fakes too.
        "real": [source.model_dump(mode="json") for source in config.real],
        "fake_sources_by": config.fake_sources_by,
    }
    if config.external is not None:  # only then, so builds without one keep their fingerprints
        # Where snapshots and extracted files lie does not shape a clip: the commit pins the bytes.
        shared["external"] = config.external.model_dump(mode="json", exclude={"snapshots", "cache_dir"})
    if not window_only:
        shared["augment"] = config.augment.model_dump(mode="json")
    out = {"bonafide": json.dumps(shared)}
    for system in config.systems:
        detail = system.model_dump(mode="json", exclude={"weight", "optional", "split"})
        # A trained model's identity (file size and time), so a retrained model remakes its clips.
        model_id = getattr((generators or {}).get(system.name), "content_id", "")
        extra = {"model": model_id} if model_id else {}
        out[system.name] = json.dumps({**shared, "system": detail, **extra}, sort_keys=True)
    return {name: hashlib.sha1(text.encode("utf-8")).hexdigest()[:16] for name, text in out.items()}
