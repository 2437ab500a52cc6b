"""Label-only access to a suspect model: a local model file or a model behind `fsw serve`'s API.

Both oracles count the images they were sent (`queries`) and answer `oracle(x) -> labels`, so
verification and extraction run unchanged against a local or a remote model.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Protocol, Self

import httpx
import torch
from omegaconf import DictConfig
from pydantic import ValidationError

from fsw.errors import ConfigError, FswError
from fsw.inference import predict
from fsw.oracle.wire import ErrorResponse, PredictResponse, describe_errors, encode_images

log = logging.getLogger(__name__)
# httpx logs every request at INFO: thousands of lines in an extraction stage's log.
logging.getLogger("httpx").setLevel(logging.WARNING)

# Answers that may succeed when asked again: overload and server-side failures.
RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
# fsw serve's reply to 1000 images is about 3 kB, an error one line: a reply near this size is not
# one of its answers, and is refused before it fills the memory.
MAX_REPLY_BYTES = 1 << 20
# fsw serve never compresses; a compressed reply could inflate far past MAX_REPLY_BYTES.
HEADERS = {"accept-encoding": "identity", "content-type": "application/json"}


class Oracle(Protocol):
    """A suspect model that answers label queries; counts the images it was sent."""

    queries: int

    def __call__(self, x: torch.Tensor) -> torch.Tensor: ...


class LocalOracle:
    """A model file loaded here, queried for labels only, as a remote API would be."""

    def __init__(self, net: torch.nn.Module):
        self.net = net
        self.queries = 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.queries += len(x)
        return predict(self.net, x)


class QueryBudgetError(FswError):
    """Sending a query would exceed the verifier's or attacker's query budget."""


class RemoteError(FswError):
    """The remote model refused a query, answered nonsense, or did not answer after the retries."""


class RemoteOracle:
    """Label queries to the API at `url`, in requests of at most `batch_size` images.

    `queries` counts every image sent, decoys and retried requests included (a request that timed
    out may still have reached the suspect). A call whose images and decoys would bring it over
    `budget` is refused with QueryBudgetError before anything is sent; so is a retry, and the call
    stops there. With `decoy_ratio` r > 0, each call mixes
    round(r * n) images drawn from `decoys` among its n images, in a random order, so that a key is
    not sent as a recognizable block; only the labels of the caller's images are returned.
    Failed requests (transport errors, 429, 5xx) are retried `retries` times, waiting
    `backoff * 2**attempt` seconds or the server's Retry-After if longer; other 4xx answers are not
    retried. The server is not trusted: each call, its requests, retries and waits included, ends
    within `deadline` seconds (at worst one request's `timeout` later, when a read started just
    before it), a reply over MAX_REPLY_BYTES or compressed is refused as it arrives, and labels must
    be integers in 0..NUM_CLASSES-1, one per image. Each of these gives a RemoteError saying so.
    """

    def __init__(
        self,
        url: str,
        *,
        batch_size: int = 100,
        budget: int | None = None,
        timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 0.5,
        deadline: float = 300.0,
        decoys: torch.Tensor | None = None,
        decoy_ratio: float = 0.0,
        seed: int = 0,
        transport: httpx.BaseTransport | None = None,
    ):
        if (
            batch_size < 1
            or retries < 0
            or timeout <= 0
            or backoff < 0
            or deadline <= 0
            or decoy_ratio < 0
        ):
            raise ConfigError(
                f"remote oracle: need batch_size >= 1, retries >= 0, timeout > 0, backoff >= 0, "
                f"deadline > 0 and decoy_ratio >= 0, got {batch_size}, {retries}, {timeout}, "
                f"{backoff}, {deadline}, {decoy_ratio}"
            )
        if budget is not None and budget < 0:
            raise ConfigError(f"query budget must be >= 0 or null (no limit), got {budget}")
        if decoy_ratio > 0 and (decoys is None or len(decoys) == 0):
            raise ConfigError("decoy_ratio > 0 needs a pool of decoy images")
        self.url = url.rstrip("/")
        self.batch_size = batch_size
        self.budget = budget
        self.retries = retries
        self.backoff = backoff
        self.deadline = deadline
        self.decoys = decoys
        self.decoy_ratio = decoy_ratio
        self.generator = torch.Generator().manual_seed(seed)
        self.timeout = timeout
        self.client = httpx.Client(base_url=self.url, headers=HEADERS, transport=transport)
        self.queries = 0

    @classmethod
    def from_config(cls, remote: DictConfig, **kwargs) -> RemoteOracle:
        """From a `remote:` config block (url, timeout_s, retries, backoff_s, deadline_s); kwargs:
        the rest."""
        return cls(
            str(remote.url),
            timeout=float(remote.timeout_s),
            retries=int(remote.retries),
            backoff=float(remote.backoff_s),
            deadline=float(remote.deadline_s),
            **kwargs,
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        self.client.close()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        n_decoys = round(self.decoy_ratio * len(x))
        needed = len(x) + n_decoys
        if self.budget is not None and self.queries + needed > self.budget:
            raise QueryBudgetError(
                f"{len(x)} images and {n_decoys} decoys need {needed} queries to {self.url}, over "
                f"the budget of {self.budget} ({self.queries} used, {self.budget - self.queries} "
                "left); nothing was sent"
            )
        deadline = time.monotonic() + self.deadline
        if n_decoys:
            picked = torch.randint(len(self.decoys), (n_decoys,), generator=self.generator)
            mixed = torch.cat([x, self.decoys[picked]])
            order = torch.randperm(len(mixed), generator=self.generator)
            answers = self._query(mixed[order], deadline)
            labels = torch.empty_like(answers)
            labels[order] = answers  # back to the order of `mixed`: the caller's images first
            return labels[: len(x)]
        return self._query(x, deadline)

    def _query(self, x: torch.Tensor, deadline: float) -> torch.Tensor:
        labels = [self._post(batch, deadline) for batch in x.split(self.batch_size)]
        return torch.cat(labels) if labels else torch.empty(0, dtype=torch.long)

    def _charge(self, n: int) -> None:
        """Count `n` images about to be sent. A call's first attempts fit in the budget (checked
        before its first request): only a retry can exceed it."""
        if self.budget is not None and self.queries + n > self.budget:
            raise QueryBudgetError(
                f"retrying a batch of {n} images would exceed the budget of {self.budget} queries "
                f"to {self.url} ({self.queries} used); stopped"
            )
        self.queries += n

    def _post(self, batch: torch.Tensor, deadline: float) -> torch.Tensor:
        body = json.dumps(encode_images(batch)).encode()
        failure = ""
        for attempt in range(self.retries + 1):
            self._charge(len(batch))
            wait = self.backoff * 2**attempt
            try:
                status, retry_after, reply = self._exchange(body, deadline)
            except httpx.TransportError as exc:
                failure = f"{type(exc).__name__}: {exc}"
            else:
                if status == 200:
                    return self._labels(reply, len(batch))
                failure = f"HTTP {status}: {_detail(reply)}"
                if status not in RETRYABLE_STATUS:
                    raise RemoteError(
                        f"{self.url} refused a batch of {len(batch)} images ({failure})"
                    )
                wait = max(wait, retry_after)
            if attempt < self.retries:
                if time.monotonic() + wait > deadline:
                    raise self._late(f"a retry after {wait:g} s would pass it; last: {failure}")
                log.warning(
                    "query to %s failed (%s); retry %d/%d in %.2f s",
                    self.url,
                    failure,
                    attempt + 1,
                    self.retries,
                    wait,
                )
                time.sleep(wait)
        raise RemoteError(
            f"{self.url} did not answer after {self.retries + 1} attempts; last: {failure}"
        )

    def _exchange(self, body: bytes, deadline: float) -> tuple[int, int, bytes]:
        """One request: (its status, the Retry-After seconds or 0, the reply's bytes). The reply
        is read as it arrives, and refused once it is too large or the call's deadline has passed."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise self._late("no time was left for a request")
        request = self.client.stream(
            "POST", "/v1/predict", content=body, timeout=min(self.timeout, remaining)
        )
        with request as response:
            encoding = response.headers.get("content-encoding", "identity")
            if encoding != "identity":
                raise RemoteError(f"{self.url} answered with Content-Encoding {encoding}, unasked")
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > MAX_REPLY_BYTES:
                raise RemoteError(
                    f"{self.url} declares a reply of {declared} bytes, over the limit of "
                    f"{MAX_REPLY_BYTES}"
                )
            reply = bytearray()
            for chunk in response.iter_bytes():  # not decoded: identity, checked above
                reply += chunk
                if len(reply) > MAX_REPLY_BYTES:
                    raise RemoteError(f"{self.url}'s reply exceeds {MAX_REPLY_BYTES} bytes")
                if time.monotonic() > deadline:
                    raise self._late(f"its reply was still coming ({len(reply)} bytes so far)")
            retry_after = response.headers.get("retry-after", "")
            seconds = int(retry_after) if retry_after.isascii() and retry_after.isdigit() else 0
            return response.status_code, seconds, bytes(reply)

    def _late(self, why: str) -> RemoteError:
        return RemoteError(
            f"{self.url} gave no answer within the deadline of {self.deadline:g} s: {why}"
        )

    def _labels(self, reply: bytes, expected: int) -> torch.Tensor:
        try:
            labels = PredictResponse.model_validate_json(reply, strict=True).labels
        except ValidationError as exc:
            raise RemoteError(
                f"{self.url} answered with no valid labels: {describe_errors(exc.errors())}"
            ) from None
        if len(labels) != expected:
            raise RemoteError(f"{self.url} answered {len(labels)} labels for {expected} images")
        return torch.tensor(labels, dtype=torch.long)


def _detail(reply: bytes) -> str:
    """The server's error message (`detail` of fsw serve's JSON errors), else the reply's start."""
    try:
        return ErrorResponse.model_validate_json(reply).detail[:200]
    except ValidationError:
        return reply[:200].decode("utf-8", "replace")
