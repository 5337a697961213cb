"""The HTTP API and the page: a FastAPI app over a :class:`JobManager`, and :func:`serve` to run it on uvicorn.

API (also documented in docs/web.md)::

    GET    /api/targets                       -> ["bass", "drums", ...]  mask targets that have checkpoints
    POST   /api/jobs   multipart: file, [targets=a,b], [mask=binary|soft]  -> 202 {"id": ...}
    GET    /api/jobs/{id}                     -> {"state", "progress", "stems", "error"}
    GET    /api/jobs/{id}/stems/{stem}.wav    (and .flac)
    GET    /api/jobs/{id}/stems.zip
    GET    /api/jobs/{id}/mixture.wav         the decoded upload, same rate and length as the stems
    GET    /api/jobs/{id}/masks.png?start=S&seconds=D   masks over the mixture spectrogram
    DELETE /api/jobs/{id}
"""

from __future__ import annotations

import contextlib
import errno
import shutil
import socket
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit

from fastapi import FastAPI, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders

from .. import audio as audio_io
from ..errors import AudioError, AudioFileError, MissingCheckpointError, OptionError, StemsplitError
from .config import ServerConfig
from .jobs import DONE, Job, JobManager, QueueFullError, available_targets, parse_job_options
from .maskview import compute_mask_view, render_mask_view
from .upload import Upload, UploadError, receive_upload

__all__ = ["create_app", "serve", "serve_in_thread", "STATIC_DIR"]

STATIC_DIR = Path(__file__).resolve().parent / "static"
_LOCAL_NAMES = ("127.0.0.1", "localhost", "::1", "[::1]")
_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
        "media-src 'self' blob:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")


class _NotFound(StemsplitError):
    """An unknown job, stem or file (404)."""


class _NotReady(StemsplitError):
    """The job has not finished, so it has nothing to download yet (409)."""


class _Forbidden(StemsplitError):
    """A request from another site's page, or for a host name this server does not answer to (403)."""


def _status(e: StemsplitError) -> int:
    """The HTTP status for an error the library or the server raised on purpose."""
    if isinstance(e, UploadError):
        return e.status
    for kind, status in ((_NotFound, 404), (_NotReady, 409), (_Forbidden, 403), (QueueFullError, 503),
                         (AudioFileError, 415), (AudioError, 400)):
        if isinstance(e, kind):
            return status
    return 400


class _Guard:
    """ASGI middleware: security headers on every response; when the server is local, only local host names
    (a defence against DNS rebinding) and no cross-site form posts (an ``Origin`` that is not this server)."""

    def __init__(self, app, *, local: bool):
        self.app, self.local = app, local

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        host = headers.get("host", "")
        refusal = None
        if self.local and _hostname(host) not in _LOCAL_NAMES:
            refusal = "This server answers to localhost / 127.0.0.1 only (it was started for this computer)."
        elif "origin" in headers and headers["origin"] != "null" and urlsplit(headers["origin"]).netloc != host:
            refusal = "Requests from other sites' pages are refused."
        elif headers.get("origin") == "null" and scope["method"] not in ("GET", "HEAD"):
            refusal = "Requests from other sites' pages are refused."
        if refusal is not None:
            return await _error_response(_Forbidden(refusal))(scope, receive, self._with_headers(scope, send))
        return await self.app(scope, receive, self._with_headers(scope, send))

    @staticmethod
    def _with_headers(scope, send):
        async def wrapped(message):
            if message["type"] == "http.response.start":
                h = MutableHeaders(scope=message)
                h.setdefault("X-Content-Type-Options", "nosniff")
                h.setdefault("Content-Security-Policy", _CSP)
                h.setdefault("Referrer-Policy", "no-referrer")
                if scope["path"].startswith("/api/"):
                    h.setdefault("Cache-Control", "no-store")
            await send(message)

        return wrapped


def _hostname(host_header: str) -> str:
    """The host name of a ``Host`` header, without the port."""
    if host_header.startswith("["):
        return host_header.split("]")[0] + "]"
    return host_header.rsplit(":", 1)[0].lower()


def _error_response(e: StemsplitError) -> JSONResponse:
    """``{"detail": message}`` with the error's status."""
    status = _status(e)
    headers = {"Retry-After": "30"} if status == 503 else None
    return JSONResponse({"detail": str(e)}, status_code=status, headers=headers)


def _check_decodes(upload: Upload) -> None:
    """Open the upload with the library's own reader (as ``stemsplit separate`` would), so a file that is not
    audio is refused before it is queued, with the command line's message naming the client's file."""
    try:
        audio_io.open_reader(upload.path).close()
    except StemsplitError as e:
        raise type(e)(str(e).replace(str(upload.path), upload.filename)) from None


def create_app(config: ServerConfig | None = None) -> FastAPI:
    """The web app: API and page. Jobs live in a temporary folder made at startup and removed at shutdown.

    Parameters
    ----------
    config : ServerConfig, optional
        Limits and target folders (defaults: :class:`ServerConfig`'s).

    Returns
    -------
    FastAPI
        An ASGI app; run it with :func:`serve`, or use it in ``fastapi.testclient.TestClient``.

    Examples
    --------
    >>> from fastapi.testclient import TestClient                       # doctest: +SKIP
    >>> with TestClient(create_app(), base_url="http://127.0.0.1") as c:  # doctest: +SKIP
    ...     c.get("/api/targets").json()
    ['bass', 'drums', 'other', 'vocals']
    """
    config = config or ServerConfig()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        root = Path(tempfile.mkdtemp(prefix="stemsplit-web-"))
        app.state.jobs = JobManager(config, root)
        try:
            yield
        finally:
            await run_in_threadpool(app.state.jobs.close)

    app = FastAPI(title="stemsplit", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.config = config
    app.add_middleware(_Guard, local=config.is_local)
    app.add_exception_handler(StemsplitError, lambda request, e: _error_response(e))
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    def manager(request: Request) -> JobManager:
        return request.app.state.jobs

    def find(request: Request, job_id: str) -> Job:
        job = manager(request).get(job_id)
        if job is None:
            raise _NotFound("No job with that id (finished jobs are removed after a while).")
        return job

    def finished(request: Request, job_id: str) -> Job:
        job = find(request, job_id)
        if job.state != DONE:
            raise _NotReady(f"The job is {job.state}" + (f": {job.error}" if job.error else "; try again soon."))
        return job

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    @app.get("/api/targets")
    def targets() -> list[str]:
        return available_targets(config)

    @app.post("/api/jobs", status_code=202)
    async def create_job(request: Request) -> JSONResponse:
        jobs = manager(request)
        jobs.reserve()
        job_id, folder = jobs.new_folder()
        try:
            upload = await receive_upload(request.headers, request.stream(), folder,
                                          max_bytes=config.max_upload_bytes)
            targets, mask = parse_job_options(upload.fields, config)
            await run_in_threadpool(_check_decodes, upload)
        except BaseException:
            jobs.release()
            shutil.rmtree(folder, ignore_errors=True)
            raise
        jobs.submit(Job(id=job_id, folder=folder, input=upload.path, filename=upload.filename, targets=targets,
                        mask=mask))
        return JSONResponse({"id": job_id}, status_code=202, headers={"Location": f"/api/jobs/{job_id}"})

    @app.get("/api/jobs/{job_id}")
    def job_status(request: Request, job_id: str) -> dict:
        return find(request, job_id).status()

    @app.delete("/api/jobs/{job_id}", status_code=204)
    def delete_job(request: Request, job_id: str) -> Response:
        if not manager(request).delete(job_id):
            raise _NotFound("No job with that id (finished jobs are removed after a while).")
        return Response(status_code=204)

    @app.get("/api/jobs/{job_id}/stems/{filename}")
    def stem(request: Request, job_id: str, filename: str) -> FileResponse:
        job = finished(request, job_id)
        name, _, fmt = filename.rpartition(".")
        path = job.stem_file(name, fmt)
        if path is None:
            raise _NotFound(f"This job has no such stem; it has {', '.join(job.stems)} (as .wav or .flac).")
        return FileResponse(path, media_type=f"audio/{fmt}", filename=f"{job.title} - {path.name}")

    @app.get("/api/jobs/{job_id}/mixture.wav")
    def mixture(request: Request, job_id: str) -> FileResponse:
        job = finished(request, job_id)
        return FileResponse(job.mixture, media_type="audio/wav", filename=f"{job.title} - mixture.wav")

    @app.get("/api/jobs/{job_id}/stems.zip")
    def stems_zip(request: Request, job_id: str) -> FileResponse:
        job = finished(request, job_id)
        return FileResponse(job.zip_file(), media_type="application/zip", filename=f"{job.title} - stems.zip")

    @app.get("/api/jobs/{job_id}/masks.png")
    def masks_png(request: Request, job_id: str, start: float = Query(0.0, ge=0.0, le=1e6),
                  seconds: float = Query(8.0, gt=0.0, le=config.mask_view_seconds)) -> Response:
        job = finished(request, job_id)
        sep = manager(request).separator(job.targets, job.mask)
        png = render_mask_view(compute_mask_view(sep, job.mixture, start, seconds))
        return Response(png, media_type="image/png")

    return app


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket, or an :class:`OptionError` that says why not."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][0]
        return socket.create_server((host, port), family=family)
    except OSError as e:
        hint = " (is another server running? choose another --port)" if e.errno == errno.EADDRINUSE else ""
        raise OptionError(f"Cannot listen on {host}:{port}: {e.strerror or e}{hint}.") from None


def _url(sock: socket.socket) -> str:
    """The page's address for a listening socket."""
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def _prepare(config: ServerConfig) -> tuple[socket.socket, object]:
    """Check the targets, bind the socket and build the uvicorn server (shared by :func:`serve` and
    :func:`serve_in_thread`)."""
    import uvicorn

    if not available_targets(config):
        raise MissingCheckpointError("No target has a trained checkpoint, so there is nothing to separate with; "
                                     "train one with: stemsplit train --target vocals --musdb-root PATH")
    sock = _bind(config.host, config.port)
    # log_config=None: uvicorn's own logging setup would bind its handlers to the sys.stderr of the moment
    # (a test's captured stream); without it, its warnings and errors go through the root logger
    server = uvicorn.Server(uvicorn.Config(create_app(config), log_config=None, log_level="warning",
                                           access_log=False, timeout_graceful_shutdown=3))
    return sock, server


def serve(config: ServerConfig | None = None) -> None:
    """Run the page and API until interrupted (Ctrl-C), printing its address on stderr.

    Parameters
    ----------
    config : ServerConfig, optional
        Where to listen and what to accept. Listening on anything but 127.0.0.1/localhost prints a warning.

    Raises
    ------
    OptionError
        The address cannot be listened on (port in use, unknown host).
    MissingCheckpointError
        No target has a checkpoint.
    TargetError
        A targets folder given does not exist.
    """
    config = config or ServerConfig()
    sock, server = _prepare(config)
    if not config.is_local:
        print(f"stemsplit: warning: listening on {config.host}: other machines that can reach this one can "
              "upload files and use its processor. Use --host 127.0.0.1 to keep the page to this computer.",
              file=sys.stderr)
    print(f"stemsplit serve: open {_url(sock)} (Ctrl-C stops it)", file=sys.stderr)
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()


@contextlib.contextmanager
def serve_in_thread(config: ServerConfig | None = None) -> Iterator[str]:
    """Run the server on a background thread (for tests and scripts); yields its base URL.

    Examples
    --------
    >>> with serve_in_thread(ServerConfig(port=0)) as url:   # doctest: +SKIP
    ...     httpx.get(url + "api/targets").json()
    """
    config = config or ServerConfig(port=0)
    sock, server = _prepare(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="stemsplit-server", daemon=True)
    thread.start()
    try:
        while not server.started and thread.is_alive():
            threading.Event().wait(0.02)
        yield _url(sock)
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()
