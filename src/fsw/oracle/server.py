"""`fsw serve`: a label-only prediction API for one model file (the suspect "remote" model).

The API answers batches of images with top-1 labels only, as the paper's remote setting assumes
(its wire format: `fsw.oracle.wire`). Every request is validated (body size, batch size, shape,
dtype, value range) and a bad one is answered with a 4xx and a message saying what is wrong; the
server keeps serving.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import torch
import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from omegaconf import DictConfig

from fsw import __version__
from fsw.config import setup_run
from fsw.errors import ConfigError, FswError, ModelFileError
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


class ServerStartError(FswError):
    """A server started for a job did not come up."""


class BodySizeLimit:
    """ASGI middleware: answer 413 to a request whose body exceeds `max_bytes`, before parsing it.

    A declared Content-Length over the limit is refused without reading the body; a chunked body is
    read up to the limit only, then passed on whole to the app.
    """

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, receive, send, int(declared))
            return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._refuse(scope, receive, send, size)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        delivered = False

        async def replay():
            nonlocal delivered
            if delivered:
                return await receive()  # what follows the body: a disconnect
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _refuse(self, scope, receive, send, size: int) -> None:
        detail = (
            f"the request body ({size} bytes or more) exceeds the limit of {self.max_bytes} bytes"
        )
        await JSONResponse({"detail": detail}, status_code=413)(scope, receive, send)


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
) -> FastAPI:
    """The prediction API of the model file `model_path` (loaded once, without executing code);
    ModelFileError if the model cannot answer (see `check_answers`)."""
    if max_batch < 1 or max_body_bytes < 1:
        raise ConfigError(
            f"max_batch and max_body_bytes must be positive, got {max_batch}, {max_body_bytes}"
        )
    net, arch, _ = load_model(model_path)
    check_answers(net, model_path)
    app = FastAPI(
        title="fsw label-only prediction API",
        version=__version__,
        description=wire.__doc__,
    )
    app.add_middleware(BodySizeLimit, max_bytes=max_body_bytes)
    bad_request = {
        413: {"model": ErrorResponse, "description": "the body exceeds the size limit"},
        422: {
            "model": ErrorResponse,
            "description": "malformed JSON, wrong shape, dtype, range or batch size",
        },
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
        "serving %s model %s (max batch %d, max body %d bytes)",
        arch["name"],
        model_path,
        max_batch,
        max_body_bytes,
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
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield base_url(sock)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@contextlib.contextmanager
def serve_in_subprocess(
    model_path: str | Path,
    *overrides: str,
    log_path: str | Path | None = None,
    start_timeout_s: float = 120.0,
) -> Iterator[str]:
    """Run `fsw serve` of `model_path` (plus Hydra `overrides`) in a child process on a free
    127.0.0.1 port; yields its base URL once it listens. On exit, even on error, the server is
    stopped (SIGTERM, then SIGKILL after 10 s). Its output goes to `log_path` (default: discarded).
    For workflow jobs and benchmarks: the server does not share the caller's interpreter."""
    with tempfile.TemporaryDirectory(prefix="fsw-serve-") as folder:
        url_file = Path(folder) / "url"
        fsw = [sys.executable, "-c", "from fsw.cli import main; main()"]
        where = [f"model_in={model_path}", "host=127.0.0.1", "port=0", f"url_file={url_file}"]
        command = [*fsw, "serve", *where, *overrides]
        with open(log_path or os.devnull, "w") as log:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
            try:
                # Importing torch, Lightning and Hydra takes seconds, more on a busy machine.
                deadline = time.monotonic() + start_timeout_s
                while not url_file.exists():
                    if process.poll() is not None:
                        raise ServerStartError(
                            f"fsw serve {model_path} exited with code {process.returncode} "
                            f"before listening (its log: {log_path or 'discarded'})"
                        )
                    if time.monotonic() > deadline:
                        raise ServerStartError(
                            f"fsw serve {model_path} did not listen within {start_timeout_s} s"
                        )
                    time.sleep(0.1)
                yield url_file.read_text().strip()
            finally:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def run(cfg: DictConfig) -> None:
    """Serve cfg.model_in until interrupted (Ctrl-C or SIGTERM stop it gracefully)."""
    setup_run(cfg)
    app = create_app(cfg.model_in, int(cfg.max_batch), int(cfg.max_body_bytes))
    sock = bind(str(cfg.host), int(cfg.port))
    url = base_url(sock)
    if cfg.url_file:
        # Written once the socket listens, so whoever waits for this file can query at once.
        atomic_write(cfg.url_file, lambda tmp: Path(tmp).write_text(url + "\n"))
    log.info("listening on %s (OpenAPI description at %s/docs)", url, url)
    config = uvicorn.Config(
        app,
        log_level=str(cfg.log_level),
        access_log=bool(cfg.access_log),
        timeout_keep_alive=int(cfg.keep_alive_s),
    )
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
