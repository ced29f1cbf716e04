"""`vcfad data build CONFIG`: real windows + automatically labelled fakes → manifest + audio.

:class:`DatasetBuilder` (``builder``) plans, makes, resumes and verifies a build; its parts are
the modules of this package (real speech, fakes, one clip, fingerprints, verification, parallel
builds). The names a caller needs are here.
"""

from services.detector.dataset.build.builder import DatasetBuilder, as_recorded_target
from services.detector.dataset.build.items import MANIFEST_COLUMNS, BuildError, BuildSummary, Shard, Verification
from services.detector.dataset.build.parallel import build_dataset

__all__ = [
    "MANIFEST_COLUMNS",
    "BuildError",
    "BuildSummary",
    "DatasetBuilder",
    "Shard",
    "Verification",
    "as_recorded_target",
    "build_dataset",
]
