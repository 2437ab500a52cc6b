"""`fsw serve`: a label-only prediction API for one model file (the suspect "remote" model).

The API answers batches of images with top-1 labels only, as the paper's remote setting assumes
(its wire format: `fsw.oracle.wire`). Every request is validated (body size, batch size, shape,
dtype, value range) and a bad one is answered with a 4xx and a message saying what is wrong; the
server keeps serving. Clients are not trusted to be quick or few: a request must arrive within
`read_timeout_s`, and past `max_concurrent_requests` at once the server answers 503 (Retry-After).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import torch
import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from omegaconf import DictConfig
from uvicorn.protocols.http.h11_impl import H11Protocol

from fsw import __version__
from fsw.config import setup_run
from fsw.errors import ConfigError, ModelFileError
from fsw.inference import predict
from fsw.io import atomic_write, load_model
from fsw.networks import INPUT_SHAPE
from fsw.oracle import wire
from fsw.oracle.wire import (
    DEFAULT_MAX_BATCH,
    DEFAULT_MAX_BODY_BYTES,
    ErrorResponse,
    HealthResponse,
    InvalidImages,
    PredictRequest,
    PredictResponse,
    decode_images,
    describe_errors,
)

log = logging.getLogger(__name__)
# Each request in progress may hold a full body and its decoded images (about 30 MB for the largest
# nested-list batch), and parsing a nested-list body holds the event loop for about 0.2 s.
DEFAULT_MAX_CONCURRENT_REQUESTS = 8
# A full body on loopback or a LAN takes well under a second.
DEFAULT_READ_TIMEOUT_S = 10.0
# How long a client told the server is busy (503) should wait: about one batch's inference.
RETRY_AFTER_S = 1


class RequestLimits:
    """ASGI middleware: at most `max_requests` requests in progress, each body at most `max_bytes`
    long and in full within `read_timeout_s`, all checked before the app parses anything.

    Over `max_requests`, a request is answered 503 with a Retry-After at once. A declared
    Content-Length over `max_bytes` is answered 413 without reading the body; a chunked body is
    read up to the limit only. A body not in full after `read_timeout_s` is answered 408 and its
    connection closed. What is left of a refused body is drained by uvicorn, for `read_timeout_s`
    at most (see `HeadDeadline`).
    """

    def __init__(self, app, max_bytes: int, max_requests: int, read_timeout_s: float):
        self.app = app
        self.max_bytes = max_bytes
        self.max_requests = max_requests
        self.read_timeout_s = read_timeout_s
        self.in_progress = 0  # changed on the event loop only: no lock

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.in_progress >= self.max_requests:
            detail = (
                f"the server is busy with {self.max_requests} requests; "
                f"retry after {RETRY_AFTER_S} s"
            )
            headers = {"retry-after": str(RETRY_AFTER_S)}
            await JSONResponse({"detail": detail}, 503, headers)(scope, receive, send)
            return
        self.in_progress += 1
        try:
            body = await self._body(scope, receive, send)
            if body is not None:
                await self.app(scope, _replay(body, receive), send)
        finally:
            self.in_progress -= 1

    async def _body(self, scope, receive, send) -> bytes | None:
        """The request's whole body, or None once the request is refused or its client left."""
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await self._too_large(int(declared))(scope, receive, send)
            return None
        chunks, size = [], 0
        try:
            async with asyncio.timeout(self.read_timeout_s):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return None
                    chunks.append(message.get("body", b""))
                    size += len(chunks[-1])
                    if size > self.max_bytes:
                        break
                    if not message.get("more_body", False):
                        return b"".join(chunks)
        except TimeoutError:
            detail = f"the request did not arrive in full within {self.read_timeout_s:g} s"
            late = JSONResponse({"detail": detail}, 408, {"connection": "close"})
            await late(scope, receive, send)
            return None
        await self._too_large(size)(scope, receive, send)
        return None

    def _too_large(self, size: int) -> JSONResponse:
        detail = (
            f"the request body ({size} bytes or more) exceeds the limit of {self.max_bytes} bytes"
        )
        return JSONResponse({"detail": detail}, 413)


def _replay(body: bytes, receive):
    """An ASGI `receive` that gives the app the body already read, then what follows it."""
    delivered = False

    async def replay():
        nonlocal delivered
        if delivered:
            return await receive()  # what follows the body: a disconnect
        delivered = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


class HeadDeadline(H11Protocol):
    """uvicorn's HTTP/1.1 protocol, with a deadline for each request's head, which uvicorn lacks:
    a client that sends nothing, or its headers a byte at a time, held its connection forever.

    From the moment a connection opens or answers a request, the next request's head must be in
    within `read_timeout_s`; else the connection is closed. A request past its head is left to
    `RequestLimits`. An idle kept-alive connection is closed by uvicorn's own keep-alive timeout
    if that comes first.
    """

    def __init__(self, *args, read_timeout_s: float, **kwargs):
        super().__init__(*args, **kwargs)
        self.read_timeout_s = read_timeout_s
        self.head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._await_head()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._await_head()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.head_timer is not None:
            self.head_timer.cancel()
        super().connection_lost(exc)

    def _await_head(self) -> None:
        if self.head_timer is not None:
            self.head_timer.cancel()
        self.head_timer = self.loop.call_later(self.read_timeout_s, self._head_overdue)

    def _head_overdue(self) -> None:
        if self.cycle is None or self.cycle.response_complete:  # no request since the timer began
            self.transport.close()


def server_config(app: FastAPI, **options) -> uvicorn.Config:
    """uvicorn's settings to serve an app of `create_app` (its protocol has the app's
    read_timeout_s as head deadline), with uvicorn `options`."""
    protocol = functools.partial(HeadDeadline, read_timeout_s=app.state.read_timeout_s)
    return uvicorn.Config(app, http=protocol, **options)


def check_answers(net: torch.nn.Module, model_path: str | Path) -> None:
    """ModelFileError if `net` cannot label a blank image with finite logits: served, it would
    report healthy and then answer every query with an error (or labels of NaN logits)."""
    try:
        with torch.no_grad():
            logits = net(torch.zeros(1, *INPUT_SHAPE))
    except Exception as exc:  # whatever the network raises, it cannot be served
        raise ModelFileError(
            f"model file {model_path} cannot be served: a forward pass failed "
            f"({type(exc).__name__}: {exc})"
        ) from exc
    if not torch.isfinite(logits).all():
        raise ModelFileError(
            f"model file {model_path} cannot be served: its outputs for a blank image are not "
            f"finite ({logits.flatten().tolist()})"
        )


def _summarize(request: Request, exc: RequestValidationError) -> str:
    """Pydantic's errors as one short line, without echoing the (possibly megabytes of) input."""
    if "json" not in request.headers.get("content-type", ""):
        return "the body must be JSON, sent with the header Content-Type: application/json"
    errors = exc.errors()
    if errors and errors[0].get("type") == "json_invalid":
        return f"malformed JSON at character {errors[0]['loc'][-1]}: {errors[0]['ctx']['error']}"
    return "invalid request: " + describe_errors(errors)


def create_app(
    model_path: str | Path,
    max_batch: int = DEFAULT_MAX_BATCH,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    max_concurrent_requests: int = DEFAULT_MAX_CONCURRENT_REQUESTS,
    read_timeout_s: float = DEFAULT_READ_TIMEOUT_S,
) -> FastAPI:
    """The prediction API of the model file `model_path` (loaded once, without executing code);
    ModelFileError if the model cannot answer (see `check_answers`). Serve it with the settings of
    `server_config`, which read the request deadline from `app.state`."""
    if min(max_batch, max_body_bytes, max_concurrent_requests, read_timeout_s) <= 0:
        raise ConfigError(
            "max_batch, max_body_bytes, max_concurrent_requests and read_timeout_s must be "
            f"positive, got {max_batch}, {max_body_bytes}, {max_concurrent_requests}, "
            f"{read_timeout_s}"
        )
    net, arch, _ = load_model(model_path)
    check_answers(net, model_path)
    app = FastAPI(
        title="fsw label-only prediction API",
        version=__version__,
        description=wire.__doc__,
    )
    app.state.read_timeout_s = read_timeout_s
    app.add_middleware(
        RequestLimits,
        max_bytes=max_body_bytes,
        max_requests=max_concurrent_requests,
        read_timeout_s=read_timeout_s,
    )
    bad_request = {
        408: {"model": ErrorResponse, "description": "the body did not arrive in time"},
        413: {"model": ErrorResponse, "description": "the body exceeds the size limit"},
        422: {
            "model": ErrorResponse,
            "description": "malformed JSON, wrong shape, dtype, range or batch size",
        },
        503: {"model": ErrorResponse, "description": "too many requests at once; see Retry-After"},
    }

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _summarize(request, exc)}, status_code=422)

    @app.exception_handler(InvalidImages)
    async def invalid_images(request: Request, exc: InvalidImages) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.get("/health", response_model=HealthResponse)
    def health() -> HealthResponse:
        return HealthResponse(
            status="ok",
            input_shape=list(INPUT_SHAPE),
            max_batch=max_batch,
            max_body_bytes=max_body_bytes,
        )

    # A plain `def`: FastAPI runs it in its thread pool, so concurrent clients do not queue behind
    # one inference on the event loop. The network is in eval mode and never changed: thread-safe.
    @app.post("/v1/predict", response_model=PredictResponse, responses=bad_request)
    def predict_labels(request: PredictRequest) -> PredictResponse:
        """Top-1 labels of a batch of images; nothing else about the model is revealed."""
        images = decode_images(request, max_batch)
        return PredictResponse(labels=predict(net, images).tolist())

    log.info(
        "serving %s model %s (max batch %d, max body %d bytes, %d requests at once, "
        "read timeout %g s)",
        arch["name"],
        model_path,
        max_batch,
        max_body_bytes,
        max_concurrent_requests,
        read_timeout_s,
    )
    return app


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (port 0 = a free port chosen by the OS)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not the default 0: asyncio disables Nagle's algorithm (TCP_NODELAY) only on the
    # accepted sockets of a listener created with it, and with Nagle each response waited about
    # 40 ms for the client's delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc}") from exc
    # Listening before uvicorn starts: a client that connects in between waits in the backlog.
    sock.listen(128)
    return sock


def base_url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


@contextlib.contextmanager
def serve_in_thread(app: FastAPI, host: str = "127.0.0.1") -> Iterator[str]:
    """Run `app` on a free port of `host` in a background thread; yields its base URL, and stops
    the server (and waits for it) on exit, even on error. For tests, benchmarks and notebooks."""
    sock = bind(host, 0)
    server = uvicorn.Server(server_config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield base_url(sock)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def _stop_when_stdin_closes(server: uvicorn.Server) -> None:
    while os.read(sys.stdin.fileno(), 4096):
        pass
    log.info("stdin closed: whoever started this server has ended; stopping")
    server.should_exit = True


def run(cfg: DictConfig) -> None:
    """Serve cfg.model_in until interrupted (Ctrl-C or SIGTERM stop it gracefully) or, with
    cfg.stop_when_stdin_closes, until stdin reaches its end."""
    setup_run(cfg)
    app = create_app(
        cfg.model_in,
        int(cfg.max_batch),
        int(cfg.max_body_bytes),
        int(cfg.max_concurrent_requests),
        float(cfg.read_timeout_s),
    )
    sock = bind(str(cfg.host), int(cfg.port))
    url = base_url(sock)
    if cfg.url_file:
        # Written once the socket listens, so whoever waits for this file can query at once.
        atomic_write(cfg.url_file, lambda tmp: Path(tmp).write_text(url + "\n"))
    log.info("listening on %s (OpenAPI description at %s/docs)", url, url)
    config = server_config(
        app,
        log_level=str(cfg.log_level),
        access_log=bool(cfg.access_log),
        timeout_keep_alive=int(cfg.keep_alive_s),
    )
    server = uvicorn.Server(config)
    if cfg.stop_when_stdin_closes:
        threading.Thread(target=_stop_when_stdin_closes, args=(server,), daemon=True).start()
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
