"""The public FastAPI gateway of vcfad, and its web page at ``/``.

Run it (port from ``VCFAD_GATEWAY_PORT``, default 8000)::

    vcfad serve gateway

``POST /detect`` is forwarded to the detector service; ``POST /clone`` queues a job for the
Celery worker through Redis. Every API route needs ``Authorization: Bearer <key>`` with a key
from ``VCFAD_API_KEYS``. OpenAPI docs are at ``/docs``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import uvicorn
from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from services.gateway.config import Settings
from services.gateway.exceptions import register_exception_handlers
from services.gateway.router import api, ops
from services.gateway.service import CloneService, DetectorClient, Metrics, RateLimiter
from shared.jobs import JobStore, WorkerSettings, create_celery

STATIC_DIR = Path(__file__).resolve().parent / "static"
logger = logging.getLogger(__name__)

DESCRIPTION = """
Voice cloning and fake-audio detection.

* **Detect**: `POST /detect` with a recording (multipart field `file`) answers in milliseconds
  with `score` (probability that it is fake), `label`, and with `?timeline=true` per-window scores.
* **Clone**: `POST /clone` with one or more `reference` recordings and a `text` answers `202` with
  a job id; poll `GET /clone/{job_id}` until `succeeded`, then fetch `GET /clone/{job_id}/audio`.

Authenticate with `Authorization: Bearer <key>` (keys from `VCFAD_API_KEYS`). A job and its audio
are visible only to the key that created it, which can also `DELETE /clone/{job_id}` at any time;
otherwise they expire (docs/security.md). Each key has a per-minute rate limit (429 with
`Retry-After`).
"""

#: The page's own script, style and media only; no inline code, no framing, no third parties.
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src 'self' blob:; "
    "connect-src 'self' blob:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Permissions-Policy": "camera=(), geolocation=(), microphone=(self)",
    "Cross-Origin-Opener-Policy": "same-origin",
}
#: FastAPI's own API docs pages load Swagger UI / ReDoc with inline code: no CSP of ours there.
DOCS_PATHS = ("/docs", "/redoc")


def create_app(
    settings: Settings | None = None,
    queue: WorkerSettings | None = None,
    detector_transport: httpx.AsyncBaseTransport | None = None,
) -> FastAPI:
    """Build the gateway; its clients (detector HTTP, Redis, Celery) open in the lifespan.

    ``detector_transport`` reaches the detector some other way than TCP (tests: the detector
    app in process); None: HTTP to ``settings.detector_url``.
    """
    settings = settings or Settings()
    queue = queue or WorkerSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = None if detector_transport is None else httpx.AsyncClient(transport=detector_transport)
        app.state.detector = DetectorClient(settings, client, metrics)
        store = JobStore.from_settings(queue)
        celery = create_celery(queue)
        app.state.clone_service = service = CloneService(settings, queue, celery, store)
        # Jobs whose worker was lost come back to the queue from here (any gateway may do it).
        recovery = asyncio.create_task(
            service.recover_forever(lambda outcome: metrics.recovered_jobs.labels(outcome=outcome).inc())
        )
        app.state.rate_limiter = RateLimiter(
            store.client,
            {
                "detect": settings.rate_limit_detect_per_min,
                "clone": settings.rate_limit_clone_per_min,
                "read": settings.rate_limit_read_per_min,
            },
        )
        if not app.state.key_owners:
            logger.warning("VCFAD_API_KEYS is empty: every API request will get 401")
        try:
            yield
        finally:
            recovery.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await recovery
            await app.state.detector.aclose()
            store.client.close()

    app = FastAPI(
        title="vcfad gateway",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        openapi_tags=[
            {"name": "detection", "description": "Is a recording real or synthetic?"},
            {"name": "cloning", "description": "Asynchronous voice cloning jobs"},
            {"name": "operations", "description": "Health, readiness and metrics"},
        ],
    )
    app.state.settings = settings
    app.state.key_owners = settings.api_key_owners()
    app.state.metrics = metrics = Metrics()

    @app.middleware("http")
    async def limit_and_measure(request: Request, call_next):
        started = time.perf_counter()
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > settings.max_request_bytes:
            # Refused before the body is read.
            response = JSONResponse(
                status_code=413,
                content={"detail": f"the request is {length} bytes; the maximum is {settings.max_request_bytes}"},
            )
        else:
            response = await call_next(request)
        route = request.scope.get("route")
        route_path = getattr(route, "path", None) or "unmatched"
        metrics.requests.labels(request.method, route_path, str(response.status_code)).inc()
        metrics.latency.labels(request.method, route_path).observe(time.perf_counter() - started)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if not request.url.path.startswith(DOCS_PATHS):
            response.headers.setdefault("Content-Security-Policy", PAGE_CSP)
        return response

    # CORS stays closed (no CORS headers: browsers refuse other origins) unless origins are configured.
    if origins := settings.cors_origin_list():
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
            expose_headers=["Location", "Retry-After"],
        )
    register_exception_handlers(app)
    app.include_router(api)
    app.include_router(ops)

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


def main() -> None:
    settings = Settings()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    uvicorn.run(
        create_app(settings),
        host=settings.gateway_host,
        port=settings.gateway_port,
        log_level="info",
        access_log=False,
    )
