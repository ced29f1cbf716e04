"""``vcfad serve detector|gateway``: run one of the HTTP services (settings from ``VCFAD_*``).

The cloning worker is Celery's own command (``celery -A services.cloner.worker worker``).
"""

from __future__ import annotations

import argparse
import importlib

#: The module whose ``main()`` runs each service.
SERVICES = {"detector": "services.detector.app", "gateway": "services.gateway.app"}


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``vcfad serve``."""
    serve = subparsers.add_parser(
        "serve",
        help="run the detector or the gateway service (host and port from VCFAD_* settings)",
        description="Run a vcfad HTTP service in the foreground: `detector` (ONNX scoring, port "
        "VCFAD_DETECTOR_PORT) or `gateway` (public API, web page and docs at /docs, port VCFAD_GATEWAY_PORT).",
    )
    serve.add_argument("service", choices=sorted(SERVICES), help="which service")
    serve.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace) -> int:
    # Only the chosen service's modules: the gateway process never loads the detector's code.
    importlib.import_module(SERVICES[args.service]).main()
    return 0
