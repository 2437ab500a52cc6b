"""Verification latency of a key of l=100, locally and over HTTP on loopback, and server throughput.

    python benchmarks/bench_verify.py [--model M --key K] [--repeats 20]

Without --model/--key it measures a stand-in: the paper's MLP (784-512-512-10) with its initial
weights and a key of 100 random images; latency does not depend on what the weights learned.
The server is a real `fsw serve` process on a free 127.0.0.1 port, stopped at the end even on error.
Writes under "verify" in docs/benchmarks/<cpu-model>.json and prints a summary. Targets: local <= 50 ms, HTTP <= 300 ms.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import torch
from omegaconf import OmegaConf
from record import latency_ms, record  # the sibling module: a script's folder is on sys.path

from fsw.io import load_model, save_model
from fsw.key import Key, load_key
from fsw.networks import build_network
from fsw.oracle.client import LocalOracle, RemoteOracle
from fsw.oracle.launch import serve_in_subprocess
from fsw.oracle.wire import encode_images
from fsw.stats.decision import PAPER_RULE
from fsw.verify import verify_key

TARGETS_MS = {"local": 50.0, "http": 300.0}
KEY_SIZE = 100
DECISION = OmegaConf.create({"rule": PAPER_RULE, "z": 0.05})


def stand_in(folder: Path) -> tuple[Path, Key]:
    """A paper-sized MLP file and a key of KEY_SIZE random images, both seeded."""
    torch.manual_seed(0)
    arch = {"name": "mlp", "hidden": 512, "dropout": 0.2}
    model = save_model(folder / "model.pt", build_network(arch), arch, {"kind": "benchmark"})
    key = Key(
        inputs=torch.rand(KEY_SIZE, 1, 28, 28),
        labels=torch.randint(0, 10, (KEY_SIZE,)),
        is_true_adversary=torch.arange(KEY_SIZE) % 2 == 0,
        source_indices=torch.arange(KEY_SIZE),
        eps=0.1,
        seed=0,
        meta={},
    )
    return model, key


def throughput(url: str, clients: int, requests_each: int, batch: int) -> dict:
    """Images/s served to `clients` concurrent clients sending `requests_each` batches each."""
    body = encode_images(torch.rand(batch, 1, 28, 28))

    def session(_: int) -> int:
        with httpx.Client(base_url=url, timeout=30) as client:
            for _ in range(requests_each):
                client.post("/v1/predict", json=body).raise_for_status()
        return requests_each * batch

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        images = sum(pool.map(session, range(clients)))
    elapsed = time.perf_counter() - started
    return {
        "clients": clients,
        "batch": batch,
        "images": images,
        "seconds": round(elapsed, 3),
        "images_per_s": round(images / elapsed),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, help="a model file (default: a stand-in MLP)")
    parser.add_argument("--key", type=Path, help="a key file (default: 100 random images)")
    parser.add_argument("--repeats", type=int, default=20)
    # One thread is the fast setting for batches of 100 on a shared 2-core machine: torch's
    # intra-op threads spin-wait for each other, and a busy core makes that 10-50x slower.
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads, here and in the server"
    )
    args = parser.parse_args()
    if (args.model is None) != (args.key is None):
        parser.error("give both --model and --key, or neither")

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        model, key = (args.model, load_key(args.key)) if args.model else stand_in(folder)
        net = load_model(model)[0]
        local = latency_ms(
            lambda: verify_key(LocalOracle(net), key, DECISION), args.repeats
        )
        server = serve_in_subprocess(
            model, f"threads={args.threads}", "access_log=false", "log_level=warning"
        )
        with server as url:
            # A fresh client per verification: the timing includes opening the connection.
            def remote_verification():
                with RemoteOracle(url, batch_size=100) as oracle:
                    verify_key(oracle, key, DECISION)

            http = latency_ms(remote_verification, args.repeats)
            served = [
                throughput(url, clients, requests, batch)
                for clients, requests, batch in ((1, 20, 100), (4, 20, 100), (4, 5, 1000))
            ]

    results = {
        "key_size": len(key),
        "model": str(args.model or "stand-in mlp 784-512-512-10"),
        "local": {
            **local,
            "target_ms": TARGETS_MS["local"],
            "met": local["p50_ms"] <= TARGETS_MS["local"],
        },
        "http": {
            **http,
            "target_ms": TARGETS_MS["http"],
            "met": http["p50_ms"] <= TARGETS_MS["http"],
        },
        "throughput": served,
        "machine": {
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(),
            "torch": torch.__version__,
        },
    }
    path = record("verify", results)
    print(f"verification of l={len(key)} (median of {args.repeats}, p95 in brackets):")
    for name in ("local", "http"):
        row = results[name]
        verdict = "met" if row["met"] else "MISSED"
        print(
            f"  {name:5s} {row['p50_ms']:8.2f} ms [{row['p95_ms']:.2f}]  "
            f"target <= {row['target_ms']:.0f} ms {verdict}"
        )
    for row in served:
        print(
            f"  throughput: {row['clients']} clients x batches of {row['batch']}: "
            f"{row['images_per_s']} images/s"
        )
    print(f"written to {path}")


if __name__ == "__main__":
    main()
