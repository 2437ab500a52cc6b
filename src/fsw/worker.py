"""The warm worker of a local sweep: one process imports torch, Lightning and the stages once, then
forks a copy of itself per job, which composes the job's config and runs its stage. A job's own
process (Snakemake's script) then pays a Python start and a socket round trip instead of ~5 s of
imports, which were 17% of the default sweep's job time.

The Snakefile starts the worker for jobs that run on this machine (config `worker`) and hands its
socket to the jobs in FSW_WORKER; a job runs its stage in its own process when no worker answers,
as on a cluster. The worker ends when the Snakemake process that started it does (its stdin closes).

    python -m fsw.worker FD       # serve on the listening socket at file descriptor FD

A job's fork takes the job's working directory, environment and standard streams (passed over the
socket), so its output lands in the job's log; it is killed when the job's process goes away, as
when Snakemake cancels the job. Snakemake's benchmark measures the job's process tree, which the
fork is not part of: the fork writes its own CPU time and peak memory to the job's usage file.
"""

from __future__ import annotations

import json
import os
import resource
import select
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import traceback
from pathlib import Path

SOCKET_ENV = "FSW_WORKER"
# A job sends its standard streams, then a length-prefixed JSON request (stage, one override list per
# run, where the fork writes its usage, working directory, environment); the fork answers its status.
_LENGTH = struct.Struct("!I")
_STARTED: list = []  # the folder of the socket and the worker, for as long as this process lives


def start(log: str | Path) -> None:
    """Start a worker logging to `log` and point this process's future children (the jobs) at it;
    it runs until this process exits. Its socket listens before the worker has imported anything,
    so jobs that start at once queue for it rather than running without it."""
    folder = tempfile.TemporaryDirectory(prefix="fsw-worker-")  # the user's alone: mode 0700
    path = Path(folder.name) / "worker.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(128)
    Path(log).parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "fsw.worker", str(listener.fileno())], stdin=subprocess.PIPE, stdout=out,
            stderr=subprocess.STDOUT, pass_fds=(listener.fileno(),),
            start_new_session=True,  # a Ctrl-C in the terminal reaches Snakemake, which cancels the jobs
            # should anything in the worker ask whether CUDA is there, NVML answers, which leaves the
            # forks free to use it; the CUDA runtime's answer would forbid it in every fork
            env={**os.environ, "PYTORCH_NVML_BASED_CUDA_CHECK": "1"},
        )
    listener.close()
    _STARTED.append((folder, worker))  # the worker ends when its stdin, this pipe, closes
    os.environ[SOCKET_ENV] = str(path)


def serve(listener: socket.socket) -> None:
    """Fork a child per connection until stdin closes; reap the children that have ended."""
    from fsw.cli import stage_run
    from fsw.stages import STAGES

    for stage in STAGES:
        stage_run(stage)
    import fsw.attack.stage  # noqa: F401  (imported by the attack stage only when it runs)

    print(f"fsw worker {os.getpid()}: ready", flush=True)
    while True:
        ready, _, _ = select.select([listener, sys.stdin], [], [], 1.0)
        if sys.stdin in ready and not os.read(sys.stdin.fileno(), 1024):
            return
        if listener in ready:
            connection, _ = listener.accept()
            sys.stdout.flush()
            if os.fork() == 0:
                listener.close()
                os._exit(_run_job(connection))
            connection.close()
        _reap()


def _reap() -> None:
    try:
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass
    except ChildProcessError:
        pass


def _run_job(connection: socket.socket) -> int:
    """In the fork: take the job's streams, directory and environment, run its stage, report."""
    try:
        _, streams, _, _ = socket.recv_fds(connection, 1, 3)
        request = json.loads(_receive(connection))
        for target, fd in enumerate(streams):
            os.dup2(fd, target)
            os.close(fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        threading.Thread(target=_exit_with_job, args=(connection,), daemon=True).start()
        status = _status(run_here, request["stage"], request["runs"])
        if request["usage_out"]:
            write_usage(request["usage_out"])
        sys.stdout.flush()
        sys.stderr.flush()
        connection.sendall(_LENGTH.pack(status))
        return status
    except BaseException:  # noqa: BLE001 - whatever happened, the job learns it failed
        traceback.print_exc()
        return 1


def _status(action, *args) -> int:
    try:
        action(*args)
        return 0
    except SystemExit as exit:
        if isinstance(exit.code, int):
            return exit.code
        print(exit.code, file=sys.stderr)  # sys.exit("message"), as Python itself would print it
        return 1
    except BaseException:  # noqa: BLE001 - printed to the job's log, as an uncaught error would be
        traceback.print_exc()
        return 1


def _exit_with_job(connection: socket.socket) -> None:
    """The job's process sends nothing after its request: end of stream means it has gone."""
    connection.recv(1)
    os._exit(1)


def usage_file(log: str | Path) -> Path:
    """Where the fork of a job with this log (or a path that mirrors it, as the job's benchmark file
    does under the benchmarks folder) writes its usage."""
    return Path(log).with_suffix(".usage.json")


def write_usage(path: str | Path) -> None:
    """This process's CPU time and peak memory, and its subprocesses' CPU time, as Snakemake's
    benchmark would have counted them for the job's own process."""
    # torch: only in the fork, which has it; a job's process stays light
    from fsw.io import write_json

    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
    write_json(path, {"cpu_s": round(cpu, 2), "max_rss_mb": round(own.ru_maxrss / 1024, 1)})


def run_here(stage: str, runs: list[list[str]]) -> None:
    """Run `stage` once per override list, in this process."""
    from fsw.cli import stage_run
    from fsw.stages import compose

    run = stage_run(stage)
    for overrides in runs:
        run(compose(stage, overrides))


def run(stage: str, runs: list[list[str]], usage_out: str | None = None) -> None:
    """Run `stage` once per override list: in a fork of the worker named by FSW_WORKER when one
    answers, else in this process. Exits with the fork's status when it fails (its traceback is in
    this process's stderr, which the fork wrote to)."""
    path = os.environ.get(SOCKET_ENV)
    connection = _connect(path) if path else None
    if connection is None:
        run_here(stage, runs)
        return
    with connection:
        sys.stdout.flush()
        sys.stderr.flush()
        socket.send_fds(connection, [b"."], [0, 1, 2])
        _send(connection, json.dumps({"stage": stage, "runs": runs, "usage_out": usage_out and os.path.abspath(usage_out),
                                      "cwd": os.getcwd(), "env": dict(os.environ)}))
        reply = _receive_exactly(connection, _LENGTH.size)
    if len(reply) < _LENGTH.size:
        sys.exit(f"fsw: the worker's process for this {stage} job ended without a result (killed?)")
    status = _LENGTH.unpack(reply)[0]
    if status:
        sys.exit(status)


def _connect(path: str) -> socket.socket | None:
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        connection.connect(path)
    except OSError:  # no worker (any more): a cluster node, or a sweep that has ended
        connection.close()
        return None
    return connection


def _send(connection: socket.socket, text: str) -> None:
    data = text.encode()
    connection.sendall(_LENGTH.pack(len(data)) + data)


def _receive(connection: socket.socket) -> str:
    size = _LENGTH.unpack(_receive_exactly(connection, _LENGTH.size))[0]
    return _receive_exactly(connection, size).decode()


def _receive_exactly(connection: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = connection.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return data


if __name__ == "__main__":
    serve(socket.socket(fileno=int(sys.argv[1])))
