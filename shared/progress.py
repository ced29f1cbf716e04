"""Progress reports of long jobs: the one callback type the cloner, its backends and the worker share.

A callee reports ``(fraction 0..1 of the work it was given, stage name)``; a caller that hands out
part of its own work rescales the fraction (the cloner gives enrollment 0.15..0.6 of a job), and
the worker's callback writes it into the job record (:meth:`shared.jobs.JobStore.report`, which
also renews the job's lease).
"""

from __future__ import annotations

from collections.abc import Callable

#: fraction 0..1 of the callee's work, stage name
ProgressCallback = Callable[[float, str], None]
