"""The serve stage of a model in a child process, for a job that queries it over HTTP (remote
verification, extraction) and for benchmarks; torch-free, so that such a job's own process stays
light when the stage runs in the warm worker (fsw.worker)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from fsw.errors import FswError


class ServerStartError(FswError):
    """A server started for a job did not come up."""


@contextlib.contextmanager
def serve_in_subprocess(
    model_path: str | Path,
    *overrides: str,
    log_path: str | Path | None = None,
    start_timeout_s: float = 120.0,
) -> Iterator[str]:
    """Run the serve stage of `model_path` (plus Hydra `overrides`) in a child process on a free
    127.0.0.1 port; yields its base URL once it listens. On exit, even on error, the server is
    stopped (SIGTERM, then SIGKILL after 10 s); if the caller dies first, even by SIGKILL, the
    server stops by itself (`stop_when_stdin_closes`). Its output goes to `log_path` (default:
    discarded). For workflow jobs and benchmarks: the server does not share the caller's
    interpreter."""
    with tempfile.TemporaryDirectory(prefix="fsw-serve-") as folder:
        url_file = Path(folder) / "url"
        # the serve stage, in a fork of the sweep's warm worker when there is one (fsw.worker)
        serve = [sys.executable, "-c", "import sys; from fsw.worker import run; run('serve', [sys.argv[1:]])"]
        where = [f"model_in={model_path}", "host=127.0.0.1", "port=0", f"url_file={url_file}"]
        command = [*serve, *where, "stop_when_stdin_closes=true", *overrides]
        with (
            open(log_path or os.devnull, "w") as log,
            # The write end of the server's stdin stays here, unused: the kernel closes it when
            # this process ends, however it ends.
            subprocess.Popen(
                command, stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT
            ) as process,
        ):
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
