"""Round-trip time of one small request to `fsw serve` on a kept-alive connection (loopback).

    python benchmarks/bench_http.py [--repeats 200]

The server is a real `fsw serve` process (one torch thread, no access log) of a stand-in MLP
(784-512-512-10 with its initial weights) on a free 127.0.0.1 port. One httpx client keeps its
connection open and sends `--repeats` requests of each kind after a warm-up: `GET /health` and
`POST /v1/predict` of one image. Reports the median (p50), p95 and minimum in ms; target: p50 <= 5 ms
for the prediction. Writes under "http" in docs/benchmarks/<cpu-model>.json.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
from pathlib import Path

import httpx
import torch

from fsw.io import save_model
from fsw.networks import build_network
from fsw.oracle.launch import serve_in_subprocess
from fsw.oracle.wire import encode_images
from fsw.report.sweep import cpu_info

TARGET_P50_MS = 5.0

from record import latency_ms, record  # the sibling module: a script's folder is on sys.path


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    torch.manual_seed(0)
    arch = {"name": "mlp", "hidden": 512, "dropout": 0.2}
    body = encode_images(torch.rand(1, 1, 28, 28))
    with tempfile.TemporaryDirectory() as tmp:
        model = save_model(Path(tmp) / "model.pt", build_network(arch), arch, {"kind": "benchmark"})
        server = serve_in_subprocess(model, "threads=1", "access_log=false", "log_level=warning")
        with server as url, httpx.Client(base_url=url, timeout=30) as client:
            health = latency_ms(lambda: client.get("/health").raise_for_status(), args.repeats)
            predict = latency_ms(lambda: client.post("/v1/predict", json=body).raise_for_status(), args.repeats)
    results = {
        "health": health,
        "predict_one_image": {
            **predict,
            "target_p50_ms": TARGET_P50_MS,
            "met": predict["p50_ms"] <= TARGET_P50_MS,
        },
        "machine": {
            **cpu_info(),
            "cpus": os.cpu_count(),
            # The load when measured: other jobs on the machine lengthen every round trip.
            "load_average_1min": round(os.getloadavg()[0], 2),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "httpx": httpx.__version__,
        },
    }
    path = record("http", results)
    for name, row in (("GET /health", health), ("POST /v1/predict, 1 image", predict)):
        p50, p95, low = row["p50_ms"], row["p95_ms"], row["min_ms"]
        print(f"{name:27s} p50 {p50:7.2f} ms  p95 {p95:7.2f}  min {low:.2f}")
    verdict = "met" if results["predict_one_image"]["met"] else "MISSED"
    print(f"target p50 <= {TARGET_P50_MS} ms: {verdict}; written to {path}")


if __name__ == "__main__":
    main()
