"""The detector service: one ONNX Runtime session per process behind ``POST /detect``.

Run it (port from ``VCFAD_DETECTOR_PORT``, default 8001)::

    vcfad serve detector

The model is loaded once at start-up (``VCFAD_DETECTOR_MODEL_DIR``, default: the shipped model)
with ``VCFAD_DETECTOR_THREADS`` intra-op threads; ``/readyz`` answers 200 once it is loaded.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import uvicorn
from fastapi import FastAPI

from services.detector.config import Settings
from services.detector.exceptions import register_exception_handlers
from services.detector.inference import Detector
from services.detector.router import router
from shared.watermark import Watermarker, WatermarkSettings

logger = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        started = time.perf_counter()
        watermarker = Watermarker.from_settings() if settings.watermark else None
        app.state.detector = Detector.from_model_dir(
            settings.model_dir, threads=settings.threads, watermarker=watermarker
        )
        logger.info("detector model loaded in %.2f s", time.perf_counter() - started)
        yield
        app.state.detector = None

    app = FastAPI(
        title="vcfad detector",
        version="0.1.0",
        description="Internal service: scores recordings with the fake-audio classifier (ONNX).",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.detector = None
    app.state.limiter = anyio.CapacityLimiter(settings.concurrency)
    register_exception_handlers(app)
    app.include_router(router)
    return app


def main() -> None:
    settings = Settings()
    if settings.watermark:
        # Checked before the server starts (the service reads them at start-up), so a bad
        # VCFAD_WATERMARK_* value ends `vcfad serve detector` with its message, not a traceback.
        WatermarkSettings()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="info", access_log=False)
