"""The web app: one plain page (static/, no build step, nothing fetched from the internet), a small
JSON API, and a server-sent event stream per run. Files are served from the root only."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import signal
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

from PIL import Image
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from spiral.app.config import UPLOAD_BYTES, ServeConfig
from spiral.app.events import EpisodeReader, end_event
from spiral.app.params import NUMBERS, ParamError, options, parse_run_params
from spiral.app.runs import OVER, RunManager
from spiral.errors import SpiralError

STATIC = Path(__file__).parent / "static"
PAGE_FILES = {"app.js": "text/javascript", "app.css": "text/css"}
# The page loads only its own files; data (goals, plans, critiques) is put in with textContent.
PAGE_POLICY = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; media-src 'self'; connect-src 'self'; frame-src 'self'"
# A run folder's own pages (viewer, bench report) are shown as documents without scripts.
FILE_POLICY = "sandbox; default-src 'none'; img-src 'self' data:; media-src 'self'; style-src 'unsafe-inline'"
LOOPBACK = ("127.0.0.1", "localhost", "::1")
POLL_SECONDS = 0.2


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def create_app(cfg: ServeConfig) -> Starlette:
    manager = RunManager(cfg.root, cfg.world_model_path, cfg.queue, cfg.cancel_grace)

    async def page(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers={"Content-Security-Policy": PAGE_POLICY, "Cache-Control": "no-store"})

    async def static(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in PAGE_FILES:
            return error(404, "no such file")
        return FileResponse(STATIC / name, media_type=PAGE_FILES[name], headers={"Cache-Control": "no-store"})

    async def get_options(request: Request) -> Response:
        return JSONResponse(options())

    async def scene(request: Request) -> Response:
        seed = request.path_params["seed"]
        least, most, _ = NUMBERS["scene_seed"]
        if not least <= seed <= most:
            return error(400, f"scene_seed must be a whole number from {least} to {most}")
        return Response(await run_in_threadpool(scene_png, seed), media_type="image/png")

    async def upload(request: Request) -> Response:
        if refused := foreign(request, ("image/png", "image/jpeg", "application/octet-stream")):
            return refused
        data = bytearray()
        async for chunk in request.stream():  # the limit holds while reading, whatever the request claims
            data += chunk
            if len(data) > UPLOAD_BYTES:
                return error(413, f"the image is over the {UPLOAD_BYTES // 2**20} MB limit: resize or compress it")
        try:
            return JSONResponse(await run_in_threadpool(manager.save_upload, bytes(data)))
        except ParamError as err:
            return error(400, str(err))

    async def uploaded(request: Request) -> Response:
        path = manager.upload_path(request.path_params["upload"])
        return error(404, "no such upload") if path is None else FileResponse(path, media_type="image/png")

    async def start_run(request: Request) -> Response:
        if refused := foreign(request, ("application/json",)):
            return refused
        try:
            body = json.loads(await request.body())
        except (ValueError, UnicodeDecodeError):
            return error(400, "send the run's parameters as JSON")
        try:
            run = await run_in_threadpool(manager.submit, parse_run_params(body))
        except ParamError as err:
            return error(400, str(err))
        return JSONResponse({"id": run.id, "state": run.state, "position": manager.position(run.id)})

    async def list_runs(request: Request) -> Response:
        return JSONResponse({"runs": await run_in_threadpool(manager.listing)})

    async def cancel(request: Request) -> Response:
        if refused := foreign(request, ("application/json",)):
            return refused
        run_id = request.path_params["run_id"]
        if manager.folder(run_id) is None:
            return error(404, f"no run {run_id} under the root")
        return JSONResponse({"id": run_id, "state": await run_in_threadpool(manager.cancel, run_id)})

    async def events(request: Request) -> Response:
        run_id = request.path_params["run_id"]
        folder = manager.folder(run_id)
        if folder is None:
            return error(404, f"no run {run_id} under the root")
        seen = request.headers.get("last-event-id", "")
        return StreamingResponse(
            event_stream(manager, run_id, folder, int(seen) if seen.isdigit() else 0),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    async def run_file(request: Request) -> Response:
        path = inside(manager.root, request.path_params["path"])
        if path is None:
            return error(404, "no such file under the root")
        headers = {"X-Content-Type-Options": "nosniff"}
        if path.suffix == ".html":
            headers["Content-Security-Policy"] = FILE_POLICY
        return FileResponse(path, headers=headers)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await run_in_threadpool(manager.shutdown)

    routes = [
        Route("/", page),
        Route("/static/{name}", static),
        Route("/api/options", get_options),
        Route("/api/scene/{seed:int}.png", scene),
        Route("/api/uploads", upload, methods=["POST"]),
        Route("/api/uploads/{upload}.png", uploaded),
        Route("/api/runs", start_run, methods=["POST"]),
        Route("/api/runs", list_runs),
        Route("/api/runs/{run_id}/cancel", cancel, methods=["POST"]),
        Route("/api/runs/{run_id}/events", events),
        Route("/runs/{path:path}", run_file),
    ]
    # Only this machine's names are answered when bound to it: a page elsewhere cannot reach the
    # server by pointing its own name at 127.0.0.1 (DNS rebinding).
    hosts = [*LOOPBACK, "[::1]"] if cfg.host in LOOPBACK else ["*"]
    app = Starlette(routes=routes, lifespan=lifespan, middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=hosts)])
    app.state.manager = manager
    return app


def foreign(request: Request, types: tuple[str, ...]) -> Response | None:
    """Refuse a request that another site's page could have made: the page sends its own origin
    and a content type a plain cross-site form cannot."""
    origin = request.headers.get("origin")
    if origin and urlsplit(origin).netloc != request.headers.get("host"):
        return error(403, "requests from other sites are refused: use the page this server serves")
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind not in types:
        return error(415, f"send the body as {' or '.join(types)}")
    return None


def inside(root: Path, relative: str) -> Path | None:
    """`relative` as a regular file inside `root` (after resolving every link), or None: no `..`,
    no absolute path, no hidden name, no link that leads out."""
    parts = relative.replace("\\", "/").split("/")  # an absolute path has an empty first part
    if "\0" in relative or any(part == "" or part.startswith(".") for part in parts):  # "." and ".." too
        return None
    try:
        path = (root / relative).resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    return path if path.is_relative_to(root) and path.is_file() else None


async def event_stream(manager: RunManager, run_id: str, folder: Path, seen: int) -> AsyncIterator[str]:
    """The run's events as server-sent events. The journal's events (and the end) are numbered in
    journal order, so a page that reconnects gets only those it has not had; the run's parameters
    and its queue state are sent unnumbered, as they are now."""
    reader = EpisodeReader(folder, f"/runs/{run_id}")
    number, shown = 0, None
    yield message({"type": "run", **manager.info(run_id)})
    while True:
        state, why = manager.state(run_id)  # read before the journal: once over, the journal read after is whole
        if state not in OVER and (state, manager.position(run_id)) != shown:
            shown = (state, manager.position(run_id))
            yield message({"type": "state", "state": state, "position": shown[1]})
        batch = await run_in_threadpool(reader.read)
        if state in OVER:
            batch.append(await run_in_threadpool(end_event, folder, f"/runs/{run_id}", state, why))
        for event in batch:
            number += 1
            if number > seen:
                yield message(event, number)
        if state in OVER:
            return
        await asyncio.sleep(POLL_SECONDS)


def message(event: dict, number: int | None = None) -> str:
    return ("" if number is None else f"id: {number}\n") + f"data: {json.dumps(event)}\n\n"


def scene_png(seed: int) -> bytes:
    """The start frame of a tabletop scene as the world model sees it (64x64), enlarged to be seen."""
    import numpy as np

    from spiral.data.video import upscale
    from spiral.worlds.tabletop.render import render
    from spiral.worlds.tabletop.scene import random_scene

    frame = render(random_scene(np.random.default_rng(seed)), 64)
    buf = io.BytesIO()
    Image.fromarray(upscale(frame[None], 4)[0]).save(buf, format="PNG")
    return buf.getvalue()


def serve(cfg: ServeConfig) -> int:
    import uvicorn

    family = socket.AF_INET6 if ":" in cfg.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((cfg.host, cfg.port))
    except OSError as err:
        sock.close()
        raise SpiralError(
            f"cannot listen on {cfg.host}:{cfg.port} ({err.strerror}): pick another --port, or --port 0 for any free one"
        ) from None
    sock.listen(128)  # connections wait in the backlog until uvicorn takes them: the address printed works at once
    app = create_app(cfg)
    host = f"[{cfg.host}]" if family == socket.AF_INET6 else cfg.host
    print(f"spiral serve: http://{host}:{sock.getsockname()[1]}/ (run folders in {app.state.manager.root})", flush=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=2))
    # uvicorn shuts down gracefully on SIGTERM or Ctrl-C, then raises the signal again; a stop that
    # was asked for and done is a clean exit.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, stopped)
    server.run(sockets=[sock])
    print("spiral serve: stopped", flush=True)
    return 0


def stopped(signum: int, frame: object) -> None:
    raise SystemExit(0)
