"""The prediction API (fsw serve) and its client (fsw.oracle.client), served on a loopback port."""

import base64
import contextlib
import gzip
import http.server
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import torch

from fsw import verify
from fsw.data import load_splits
from fsw.errors import ConfigError, ModelFileError
from fsw.inference import predict
from fsw.io import load_model, save_model
from fsw.key import Key
from fsw.networks import build_network
from fsw.oracle import client as client_module
from fsw.oracle import server as server_module
from fsw.oracle.client import QueryBudgetError, RemoteError, RemoteOracle
from fsw.oracle.launch import serve_in_subprocess
from fsw.oracle.server import create_app, serve_in_thread
from fsw.oracle.wire import encode_images
from tests.conftest import REPO, tiny

MAX_BATCH = 64
MAX_BODY = 300_000  # a full batch of 64 float32 images in base64 is about 268 kB


@pytest.fixture(scope="module")
def marked_net(marked_mlp):
    return load_model(marked_mlp)[0]


@pytest.fixture(scope="module")
def server(marked_mlp):
    with serve_in_thread(
        create_app(marked_mlp, max_batch=MAX_BATCH, max_body_bytes=MAX_BODY)
    ) as url:
        yield url


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server, timeout=10) as client:
        yield client


@pytest.fixture(scope="module")
def images():
    return load_splits(tiny("verify").data).test.x[:MAX_BATCH]


def b64(tensor: torch.Tensor) -> str:
    return base64.b64encode(tensor.contiguous().numpy().tobytes()).decode()


def test_health_and_openapi(client):
    health = client.get("/health").json()
    assert health == {
        "status": "ok",
        "input_shape": [1, 28, 28],
        "max_batch": MAX_BATCH,
        "max_body_bytes": MAX_BODY,
    }
    spec = client.get("/openapi.json").json()
    assert {"/health", "/v1/predict"} <= set(spec["paths"])


def test_labels_of_every_encoding_match_the_model(client, marked_net, images):
    pixels = (images * 255).round().to(torch.uint8)
    cases = {
        "float32": (encode_images(images), images),
        "uint8": (
            {
                "encoding": "base64",
                "dtype": "uint8",
                "shape": list(pixels.shape),
                "data": b64(pixels),
            },
            pixels.float() / 255,
        ),
        "list": ({"encoding": "list", "images": images[:8].tolist()}, images[:8]),
    }
    for name, (body, seen) in cases.items():
        response = client.post("/v1/predict", json=body)
        assert response.status_code == 200, (name, response.text)
        assert response.json() == {"labels": predict(marked_net, seen).tolist()}, name


def _base64_body(tensor: torch.Tensor, **changes) -> dict:
    return {**encode_images(tensor), **changes}


ONE = torch.full((1, 1, 28, 28), 0.5)
JSON = {"content-type": "application/json"}


def as_list(images) -> dict:
    return {"json": {"encoding": "list", "images": images}}


# name -> (httpx.post arguments, expected status, a phrase of the expected message)
BAD_REQUESTS = {
    "malformed JSON": ({"content": b'{"encoding": "list"', "headers": JSON}, 422, "malformed JSON"),
    "not JSON": (
        {"content": b"hello", "headers": {"content-type": "text/plain"}},
        422,
        "must be JSON",
    ),
    "unknown encoding": ({"json": {"encoding": "png", "data": ""}}, 422, "encoding"),
    "unknown field": ({"json": {**encode_images(ONE), "labels": [1]}}, 422, "labels"),
    "wrong dtype": ({"json": _base64_body(ONE, dtype="float64")}, 422, "dtype"),
    "wrong shape": ({"json": _base64_body(ONE, shape=[1, 28, 28])}, 422, "shape [N, 1, 28, 28]"),
    "wrong length": ({"json": _base64_body(ONE, shape=[2, 1, 28, 28])}, 422, "needs 6272"),
    "bad base64": ({"json": _base64_body(ONE, data="@@@@")}, 422, "base64"),
    "above 1": ({"json": encode_images(ONE * 3)}, 422, "[0, 1]"),
    "NaN": ({"json": encode_images(ONE * float("nan"))}, 422, "NaN"),
    "negative list": (as_list((-ONE).tolist()), 422, "[0, 1]"),
    "ragged list": (as_list([[[0.5] * 28] * 28, [[0.5]]]), 422, "rectangular"),
    "strings in list": (as_list([[["a"] * 28] * 28]), 422, "numbers"),
    "empty batch": ({"json": encode_images(torch.zeros(0, 1, 28, 28))}, 422, "1 to 64"),
    "batch too large": (
        as_list(torch.zeros(MAX_BATCH + 1, 1, 28, 28).int().tolist()),
        422,
        "1 to 64",
    ),
    "body too large": (
        {"content": b"x" * (MAX_BODY + 1), "headers": JSON},
        413,
        "exceeds the limit",
    ),
    # No Content-Length: the server counts the bytes of the chunked body as they come.
    "chunked body too large": (
        {"content": iter([b"x" * 100_000] * 4), "headers": JSON},
        413,
        "exceeds the limit",
    ),
}


@pytest.mark.parametrize("name", BAD_REQUESTS)
def test_bad_request_gets_a_4xx_and_the_server_goes_on(client, name, images):
    request, status, message = BAD_REQUESTS[name]
    response = client.post("/v1/predict", **request)
    assert response.status_code == status, response.text
    assert message in response.json()["detail"]
    assert client.post("/v1/predict", json=encode_images(images[:2])).status_code == 200


@pytest.mark.parametrize("decoys", [0.0, 1.0])
@pytest.mark.parametrize("suspect", ["marked", "unmarked"])
def test_remote_verification_equals_local(
    suspect, decoys, marked_mlp, trained_mlp, mlp_key, tmp_path
):
    model = marked_mlp if suspect == "marked" else trained_mlp
    common = [f"model_in={model}", f"key_in={mlp_key}", f"suspect.kind={suspect}"]
    local = verify.run(tiny("verify", *common, f"out={tmp_path}/local.json"))
    with serve_in_thread(create_app(model)) as url:
        remote = verify.run(
            tiny(
                "verify",
                *common,
                f"out={tmp_path}/remote.json",
                f"remote.url={url}",
                f"remote.decoys={decoys}",
                "remote.budget=100",
            )
        )
    assert (local["oracle"], remote["oracle"]) == ("local", "remote")
    decision = [
        "key_errors",
        "key_errors_true_adv",
        "key_errors_false_adv",
        "answers",
        "decision",
        "paper_binomial",
        "rules",
        "test_acc",
        "key_hash",
        "suspect_network",
    ]
    assert {k: remote[k] for k in decision} == {k: local[k] for k in decision}
    assert set(remote["decision"]) == {"rule", "marked", "p_value", "threshold", "calibration_hash"}
    assert remote["decision"]["rule"] == "family_binomial" and remote["decision"]["calibration_hash"]
    assert local["paper_binomial"]["marked"] == (suspect == "marked")
    assert remote["queries"] == local["queries"] * (1 + decoys) == 20 * (1 + decoys)
    assert json.loads((tmp_path / "remote.json").read_text())["queries"] == remote["queries"]


def test_remote_verification_needs_no_model_file(server, mlp_key, tmp_path):
    record = verify.run(tiny("verify", "model_in=null", f"key_in={mlp_key}", f"out={tmp_path}/r.json",
                             f"remote.url={server}", "suspect.network=mlp"))
    assert record["oracle"] == "remote" and record["paper_binomial"]["marked"] and record["test_acc"] is None
    assert record["decision"]["calibration_hash"]
    assert record["suspect_network"] == "mlp"
    with pytest.raises(ConfigError, match="model_in .* or remote.url"):
        verify.run(tiny("verify", "model_in=null", f"key_in={mlp_key}", f"out={tmp_path}/x.json"))


def test_decoys_hide_the_key_among_other_images(server, marked_net, images):
    key_like, decoys = images[:10], images[10:]
    sent = []
    with RemoteOracle(server, decoys=decoys, decoy_ratio=2.0, seed=1) as oracle:
        oracle.client.event_hooks["request"].append(
            lambda request: sent.append(json.loads(request.content))
        )
        labels = oracle(key_like)
    assert labels.tolist() == predict(marked_net, key_like).tolist()
    assert oracle.queries == 30
    batch = torch.frombuffer(
        bytearray(base64.b64decode(sent[0]["data"])), dtype=torch.float32
    ).view(-1, 1, 28, 28)
    positions = [int((batch == item).flatten(1).all(1).nonzero()[0]) for item in key_like]
    assert positions != list(range(10))  # not the first block of the request


def test_client_refuses_to_exceed_its_budget_before_sending(server, images):
    sent = []
    with RemoteOracle(server, budget=30) as oracle:
        oracle.client.event_hooks["request"].append(sent.append)
        oracle(images[:20])
        with pytest.raises(QueryBudgetError, match="over the budget of 30"):
            oracle(images[:20])
        assert (oracle.queries, len(sent)) == (20, 1)
        oracle(images[:10])  # exactly the budget is allowed
        assert oracle.queries == 30
    with RemoteOracle(server, budget=15, decoys=images, decoy_ratio=1.0) as oracle:
        with pytest.raises(QueryBudgetError):
            oracle(images[:10])  # 10 key items + 10 decoys
        assert oracle.queries == 0


def test_client_retries_server_errors_with_backoff(images):
    answers = iter(
        [
            httpx.Response(503, json={"detail": "busy"}),
            httpx.Response(500, text="oops"),
            httpx.Response(200, json={"labels": [3, 4]}),
        ]
    )
    oracle = RemoteOracle(
        "http://fsw.test",
        retries=2,
        backoff=0.01,
        transport=httpx.MockTransport(lambda request: next(answers)),
    )
    assert oracle(images[:2]).tolist() == [3, 4]
    assert oracle.queries == 6  # every attempt may have reached the suspect


def test_client_does_not_retry_a_refused_query(images):
    calls = []

    def refuse(request):
        calls.append(request)
        return httpx.Response(422, json={"detail": "images must have shape [N, 1, 28, 28]"})

    oracle = RemoteOracle("http://fsw.test", retries=3, transport=httpx.MockTransport(refuse))
    with pytest.raises(RemoteError, match=r"422: images must have shape"):
        oracle(images[:2])
    assert len(calls) == 1


def test_client_gives_up_on_an_unreachable_server(images):
    with socket.socket() as sock:  # a loopback port nobody listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    started = time.perf_counter()
    oracle = RemoteOracle(f"http://127.0.0.1:{port}", retries=2, backoff=0.01, timeout=2)
    with oracle, pytest.raises(RemoteError, match="after 3 attempts"):
        oracle(images[:2])
    assert time.perf_counter() - started < 10


def test_concurrent_clients(server, marked_net, images):
    clients, requests_each, batch = 8, 50, 4
    expected = predict(marked_net, images).tolist()

    def client_session(index: int) -> list[str]:
        problems = []
        with httpx.Client(base_url=server, timeout=10) as client:
            for request in range(requests_each):
                start = (index * requests_each + request) % (len(images) - batch)
                chunk = slice(start, start + batch)
                response = client.post("/v1/predict", json=encode_images(images[chunk]))
                if response.status_code != 200 or response.json()["labels"] != expected[chunk]:
                    problems.append(f"client {index} request {request}: {response.text}")
        return problems

    with ThreadPoolExecutor(clients) as pool:
        problems = [p for result in pool.map(client_session, range(clients)) for p in result]
    assert problems == []


def test_fsw_serve_process_answers_and_is_stopped_on_exit(marked_mlp, tmp_path):
    log = tmp_path / "serve.log"
    with serve_in_subprocess(marked_mlp, "threads=1", log_path=log) as url:
        assert httpx.get(f"{url}/health", timeout=10).json()["status"] == "ok"
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/health", timeout=10)
    assert "Finished server process" in log.read_text()  # a graceful stop, not a kill


def _server_end(client_end: socket.socket) -> socket.socket:
    """The accepted socket of this process (the server runs in a thread here) at the other end of
    `client_end`, found by its addresses among this process's file descriptors (Linux /proc)."""
    wanted = (client_end.getpeername(), client_end.getsockname())
    for fd in map(int, os.listdir("/proc/self/fd")):
        try:
            candidate = socket.socket(fileno=os.dup(fd))
        except OSError:  # not a socket
            continue
        try:
            if (candidate.getsockname(), candidate.getpeername()) == wanted:
                return candidate
        except OSError:  # a listening or unconnected socket
            pass
        candidate.close()
    raise AssertionError(f"no socket of this process accepted {wanted[1]}")


def test_both_ends_of_a_connection_send_small_writes_at_once(client):
    """Without TCP_NODELAY, a response written in two parts waits for the client's delayed ACK
    (about 40 ms per request on Linux): Nagle's algorithm. Both ends must disable it."""
    response = client.get("/health")
    client_end = response.extensions["network_stream"].get_extra_info("socket")
    with _server_end(client_end) as server_end:
        for end in (client_end, server_end):
            assert end.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY), end


def _overflowing_model(path: Path) -> Path:
    """Finite weights (the loader takes them) whose products overflow to infinite logits."""
    arch = {"name": "mlp", "hidden": 16, "dropout": 0.0}
    net = build_network(arch)
    with torch.no_grad():
        for parameter in net.parameters():
            parameter.fill_(3e38)
    return save_model(path, net, arch, {})


def test_server_refuses_to_start_on_a_model_it_could_not_answer_with(tmp_path, marked_mlp, monkeypatch):
    with pytest.raises(ModelFileError, match="not finite"):
        create_app(_overflowing_model(tmp_path / "overflow.pt"))

    def broken(*args):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    net, arch, meta = load_model(marked_mlp)
    monkeypatch.setattr(net, "forward", broken)
    monkeypatch.setattr(server_module, "load_model", lambda path: (net, arch, meta))
    with pytest.raises(ModelFileError, match="forward pass failed.*cannot be multiplied"):
        create_app(marked_mlp)


def test_a_whole_verification_is_checked_against_the_budget_before_the_first_request(
    monkeypatch, images
):
    """A key of 100 with half as many decoys needs 150 queries: over a budget of 100, nothing is
    sent, however the key is cut into requests."""
    sent = []

    def answer(request):
        sent.append(request)
        return httpx.Response(200, json={"labels": [0] * json.loads(request.content)["shape"][0]})

    class CountedOracle(RemoteOracle):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, transport=httpx.MockTransport(answer), **kwargs)

    monkeypatch.setattr(verify, "RemoteOracle", CountedOracle)
    size = 100
    key = Key(inputs=torch.rand(size, 1, 28, 28), labels=torch.zeros(size, dtype=torch.long),
              is_true_adversary=torch.arange(size) % 2 == 0, source_indices=torch.arange(size),
              eps=0.1, seed=0, meta={})
    cfg = tiny("verify", "remote.url=http://fsw.test", "remote.budget=100", "remote.decoys=0.5",
               "batch_size=50")
    with pytest.raises(QueryBudgetError) as refusal:
        verify.query_suspect(cfg, None, key, images)
    assert len(sent) == 0
    assert "100 images and 50 decoys need 150 queries" in str(refusal.value)
    assert "over the budget of 100" in str(refusal.value)


def test_a_retry_over_the_budget_stops_the_call(images):
    answers = iter([httpx.Response(503, json={"detail": "busy"})])
    oracle = RemoteOracle("http://fsw.test", budget=3, backoff=0.01,
                          transport=httpx.MockTransport(lambda request: next(answers)))
    with pytest.raises(QueryBudgetError, match="retrying a batch of 2 images would exceed the "
                                               r"budget of 3 queries to http://fsw.test \(2 used\)"):
        oracle(images[:2])
    assert oracle.queries == 2


# ----------------------------------------------------------------------------- hostile servers


@contextlib.contextmanager
def hostile_server(answer) -> Iterator[str]:
    """A loopback HTTP server that reads each request, then lets `answer(wfile)` write any bytes
    it likes as the reply (status line and headers included); yields its base URL."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("content-length", 0)))
            self.close_connection = True
            with contextlib.suppress(OSError):  # the client hung up: what the client should do
                answer(self.wfile)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def reply(body: bytes, status: str = "200 OK", *headers: str):
    head = [f"HTTP/1.1 {status}", "Content-Type: application/json", *headers]
    if not any(h.lower().startswith("content-length") for h in headers):
        head.append(f"Content-Length: {len(body)}")

    def answer(wfile):
        wfile.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)

    return answer


def endless(status: str = "200 OK"):
    """A reply without a length that goes on until the client hangs up (or 50 MB)."""

    def answer(wfile):
        wfile.write(f"HTTP/1.1 {status}\r\nConnection: close\r\n\r\n".encode())
        for _ in range(800):
            wfile.write(b"[" * 65536)

    return answer


def trickled(wfile):
    """A valid reply, one byte every 0.2 s: each read of the client is quick, the whole is not."""
    body = b'{"labels": [1, 2]}'.ljust(40)
    wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body))
    for byte in body:
        wfile.write(bytes([byte]))
        wfile.flush()
        time.sleep(0.2)


def silent(wfile):
    time.sleep(10)


def compressed(wfile):
    """Valid labels, padded to 20 MB by whitespace and gzipped to 20 kB: a decompression bomb."""
    body = gzip.compress(b'{"labels": [1, 2]' + b" " * 20_000_000 + b"}")
    reply(body, "200 OK", "Content-Encoding: gzip")(wfile)


def labels(*values) -> bytes:
    return ("{" + f'"labels": [{", ".join(map(str, values))}]' + "}").encode()


# name -> (what the server answers, RemoteOracle options beyond the defaults of the test, a phrase
# of the RemoteError); the client sends two images.
HOSTILE_SERVERS = {
    "label 11 of 10 classes": (reply(labels(11, 0)), {}, "less than 10"),
    "negative label": (reply(labels(0, -1)), {}, "greater than or equal to 0"),
    "label 10**30": (reply(labels(10**30, 0)), {}, "less than 10"),
    "boolean label": (reply(labels("true", 0)), {}, "valid integer"),
    "fractional label": (reply(labels(1.5, 0)), {}, "valid integer"),
    "too few labels": (reply(labels(1)), {}, "1 labels for 2 images"),
    "labels not a list": (reply(b'{"labels": "01"}'), {}, "valid array"),
    "no labels": (reply(b'{"answer": [1, 2]}'), {}, "Field required"),
    "HTML reply": (reply(b"<html>busy</html>"), {}, "Invalid JSON"),
    "deeply nested JSON": (reply(b"[" * 200_000), {}, "recursion limit"),
    "reply declared too large": (
        reply(b"", "200 OK", "Content-Length: 1000000000000"),
        {},
        "declares a reply of 1000000000000 bytes",
    ),
    "endless reply": (endless(), {}, "reply exceeds 1048576 bytes"),
    "endless error reply": (endless("500 Internal Server Error"), {}, "reply exceeds 1048576 bytes"),
    "compressed reply": (compressed, {}, "Content-Encoding gzip"),
    "trickled reply": (trickled, {"deadline": 2}, "deadline of 2 s"),
    "silent server": (silent, {"retries": 5, "deadline": 2}, "deadline of 2 s"),
    "retry after an hour": (
        reply(b'{"detail": "busy"}', "503 Service Unavailable", "Retry-After: 3600"),
        {},
        "retry after 3600 s",
    ),
}


@pytest.mark.parametrize("name", HOSTILE_SERVERS)
def test_client_refuses_a_hostile_server_with_a_clear_error(name, images):
    answer, options, message = HOSTILE_SERVERS[name]
    started = time.monotonic()
    with hostile_server(answer) as url:
        options = {"timeout": 1, "retries": 1, "backoff": 0.01, **options}
        with RemoteOracle(url, **options) as oracle, pytest.raises(RemoteError, match=message):
            oracle(images[:2])
    assert time.monotonic() - started < 10


def test_client_waits_as_long_as_the_server_asks(monkeypatch, images):
    answers = iter([httpx.Response(503, headers={"retry-after": "2"}, json={"detail": "busy"}),
                    httpx.Response(200, json={"labels": [3, 4]})])
    waits = []
    monkeypatch.setattr(client_module.time, "sleep", waits.append)
    oracle = RemoteOracle("http://fsw.test", backoff=0.01,
                          transport=httpx.MockTransport(lambda request: next(answers)))
    assert oracle(images[:2]).tolist() == [3, 4]
    assert waits == [2]


# ----------------------------------------------------------------------------- hostile clients

READ_TIMEOUT_S = 2.0
MAX_REQUESTS = 4


@pytest.fixture(scope="module")
def strict_server(marked_mlp):
    """A server with short read timeouts and room for four requests at once."""
    app = create_app(marked_mlp, max_batch=1000, read_timeout_s=READ_TIMEOUT_S,
                     max_concurrent_requests=MAX_REQUESTS)
    with serve_in_thread(app) as url:
        yield url


def address(url: str) -> tuple[str, int]:
    host, port = httpx.URL(url).host, httpx.URL(url).port
    return host, port


HEAD = b"POST /v1/predict HTTP/1.1\r\nHost: fsw.test\r\nContent-Type: application/json\r\n"


def slow_client(url: str, first: bytes, drip: bytes, every: float = 0.2, limit: float = 8.0):
    """Send `first`, then `drip` every `every` s, until the server closes the connection or `limit`
    s have passed; returns (what the server sent, seconds until it closed, or None)."""
    started = time.monotonic()
    received = b""
    with socket.create_connection(address(url), timeout=limit) as sock:
        try:
            sock.sendall(first)
            while time.monotonic() - started < limit:
                readable, _, _ = select.select([sock], [], [], every)
                if readable:
                    chunk = sock.recv(65536)
                    if not chunk:
                        return received, time.monotonic() - started
                    received += chunk
                elif drip:
                    sock.sendall(drip)
        except OSError:  # reset by the server: closed as well
            return received, time.monotonic() - started
    return received, None


# name -> (what the client sends first, what it then sends every 0.2 s, the start of the server's
# reply before it closes the connection)
HOSTILE_CLIENTS = {
    "idle connection": (b"", b"", b""),
    "headers a byte at a time": (HEAD, b"X", b""),
    "body a byte at a time": (HEAD + b"Content-Length: 1000\r\n\r\n", b"[", b"HTTP/1.1 408 "),
    "10 GB body declared, then trickled": (
        HEAD + b"Content-Length: 10000000000\r\n\r\n",
        b"[",
        b"HTTP/1.1 413 ",
    ),
}


@pytest.mark.parametrize("name", HOSTILE_CLIENTS)
def test_a_slow_client_is_cut_off_after_the_read_timeout(strict_server, name, images):
    first, drip, reply = HOSTILE_CLIENTS[name]
    received, closed_after = slow_client(strict_server, first, drip)
    assert received.startswith(reply), received[:100]
    assert closed_after is not None and closed_after < READ_TIMEOUT_S + 3, closed_after
    with httpx.Client(base_url=strict_server, timeout=10) as client:
        assert client.post("/v1/predict", json=encode_images(images[:2])).status_code == 200


def test_a_busy_server_answers_503_with_retry_after(strict_server, marked_net, images):
    holders = ThreadPoolExecutor(MAX_REQUESTS)
    body_pending = HEAD + b"Content-Length: 1000\r\n\r\n"
    held = [holders.submit(slow_client, strict_server, body_pending, b"") for _ in range(MAX_REQUESTS)]
    try:
        with httpx.Client(base_url=strict_server, timeout=10) as client:
            deadline = time.monotonic() + READ_TIMEOUT_S
            response = client.get("/health")
            while response.status_code == 200 and time.monotonic() < deadline:
                response = client.get("/health")
            assert response.status_code == 503, response.text
            assert response.headers["retry-after"] == "1"
            assert "busy" in response.json()["detail"]
        # The holders are cut off after the read timeout; the client waits as it is told and
        # gets its answer.
        with RemoteOracle(strict_server, retries=5, deadline=30) as oracle:
            assert oracle(images[:4]).tolist() == predict(marked_net, images[:4]).tolist()
    finally:
        holders.shutdown(wait=True)
    assert all(future.result()[0].startswith(b"HTTP/1.1 408 ") for future in held)


def test_normal_clients_get_answers_while_slow_and_heavy_clients_attack(
    strict_server, marked_net, images
):
    """All along: eight clients sending their headers a byte at a time (they hold no request slot),
    one sending its body a byte at a time and one sending the largest nested-list bodies (a slot
    each). Four normal clients must get every answer, right, within their deadline, waiting when
    told to; the slow clients are cut off by the server, again and again."""
    heavy = json.dumps({"encoding": "list", "images": torch.rand(1000, 1, 28, 28).tolist()}).encode()
    stop = threading.Event()

    def heavy_client() -> int:
        with httpx.Client(base_url=strict_server, timeout=30) as client:
            while not stop.is_set():
                client.post("/v1/predict", content=heavy, headers=JSON)
        return 1

    def slowloris(first: bytes) -> int:
        """How many times the server cut this client off; one connection at least."""
        cut = 0
        while True:
            cut += slow_client(strict_server, first, b"X", limit=READ_TIMEOUT_S + 3)[1] is not None
            if stop.is_set():
                return cut

    expected = predict(marked_net, images).tolist()

    def normal_client(index: int) -> list[str]:
        problems = []
        with RemoteOracle(strict_server, retries=20, backoff=0.05, deadline=60) as oracle:
            for call in range(10):
                start = (index * 10 + call) % 60
                try:
                    if oracle(images[start : start + 4]).tolist() != expected[start : start + 4]:
                        problems.append(f"client {index} call {call}: wrong labels")
                except RemoteError as exc:
                    problems.append(f"client {index} call {call}: {exc}")
        return problems

    attackers = [(heavy_client, ()), (slowloris, (HEAD + b"Content-Length: 1000\r\n\r\n",))]
    attackers += [(slowloris, (HEAD,))] * 8
    with ThreadPoolExecutor(len(attackers) + 4) as pool:
        attacks = [pool.submit(attack, *args) for attack, args in attackers]
        time.sleep(1)  # the attack is under way before the first normal request
        normal = [pool.submit(normal_client, index) for index in range(4)]
        problems = [p for future in normal for p in future.result(timeout=180)]
        stop.set()
        cut = [attack.result(timeout=60) for attack in attacks]
    assert problems == []
    assert all(cut), cut


def _alive(pid: int) -> bool:
    """Whether process `pid` runs: a zombie (dead, not yet reaped by init) does not."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_fsw_serve_dies_with_the_process_that_started_it(marked_mlp):
    """SIGKILL of a job running `fsw serve` through serve_in_subprocess leaves no server behind."""
    job = textwrap.dedent(f"""
        import time
        from fsw.oracle.launch import serve_in_subprocess
        with serve_in_subprocess({str(marked_mlp)!r}, "threads=1") as url:
            print(url, flush=True)
            time.sleep(300)
    """)
    parent = subprocess.Popen([sys.executable, "-c", job], stdout=subprocess.PIPE, text=True)
    server_pid = None
    try:
        url = parent.stdout.readline().strip()  # within serve_in_subprocess's start timeout
        assert httpx.get(f"{url}/health", timeout=10).status_code == 200
        children = Path(f"/proc/{parent.pid}/task/{parent.pid}/children").read_text().split()
        (server_pid,) = map(int, children)
        parent.kill()
        parent.wait(timeout=10)
        gone_by = time.monotonic() + 10
        while _alive(server_pid) and time.monotonic() < gone_by:
            time.sleep(0.1)
        assert not _alive(server_pid), "fsw serve outlived the job that started it"
    finally:
        parent.kill()
        parent.wait(timeout=10)
        if server_pid is not None and _alive(server_pid):
            os.kill(server_pid, signal.SIGKILL)


# ----------------------------------------------------------------------------- the documented table

# Cases with a test of their own: name -> that test.
SINGLE_CASES = {
    "model with NaN weights": test_server_refuses_to_start_on_a_model_it_could_not_answer_with,
    "model whose forward pass fails": (
        test_server_refuses_to_start_on_a_model_it_could_not_answer_with
    ),
    "more requests than the server takes at once": test_a_busy_server_answers_503_with_retry_after,
    "slowloris and heavy clients beside normal ones": (
        test_normal_clients_get_answers_while_slow_and_heavy_clients_attack
    ),
    "job running fsw serve killed by SIGKILL": test_fsw_serve_dies_with_the_process_that_started_it,
}
SECTION = "### Bad inputs tried: the HTTP API"


def documented_cases() -> list[str]:
    """The first cells (`name`) of the table in docs/threat-model.md's section SECTION."""
    text = (REPO / "docs" / "threat-model.md").read_text()
    assert SECTION in text
    section = re.split(r"\n#{1,3} ", text.split(SECTION, 1)[1], maxsplit=1)[0]
    return re.findall(r"^\| `([^`]+)` \|", section, flags=re.MULTILINE)


def test_every_case_tried_is_in_the_threat_model_and_every_row_is_tried():
    tried = [*BAD_REQUESTS, *HOSTILE_CLIENTS, *HOSTILE_SERVERS, *SINGLE_CASES]
    assert len(set(tried)) == len(tried), "two cases of one name"
    documented = documented_cases()
    assert len(set(documented)) == len(documented), "two rows of one name"
    assert sorted(set(tried) - set(documented)) == [], "tried, not in the table"
    assert sorted(set(documented) - set(tried)) == [], "in the table, not tried"
