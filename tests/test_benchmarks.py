"""The on-demand benchmarks' command lines and arithmetic (their timings are never asserted: see
benchmarks/)."""

import argparse
import importlib.util
import json
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load(name: str):
    sys.path.insert(0, str(BENCHMARKS))  # as when run as a script: its sibling modules import
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench_lightning():
    return load("bench_lightning")


def test_a_sweeps_job_overhead_is_its_training_jobs_time_beyond_their_stage(tmp_path):
    """Per training job, the benchmark's run time less the stage's own wall time; its median,
    counted for every benchmarked job, over the job time."""
    bench_sweep = load("bench_sweep")
    results = tmp_path / "results"
    header = "s\th:m:s\tmax_rss\tcpu_time\n"
    for seed, (run_s, stage_s) in enumerate([(10.0, 9.7), (20.0, 19.5), (30.0, 22.0)]):
        bench = results / "benchmarks" / "train" / "owner" / "mlp" / f"s{seed}.tsv"
        bench.parent.mkdir(parents=True, exist_ok=True)
        bench.write_text(header + f"{run_s}\t0:00:10\t500\t{run_s}\n")
        metrics = results / "train" / "owner" / "mlp" / f"s{seed}" / "metrics.json"
        metrics.parent.mkdir(parents=True)
        metrics.write_text(json.dumps({"wall_time_s": stage_s}))
    (results / "benchmarks" / "verify").mkdir()
    (results / "benchmarks" / "verify" / "key.tsv").write_text(header + "40.0\t0:00:40\t500\t39.0\n")
    costs = bench_sweep.sweep_costs(results, results / "train")
    assert costs["job_overhead_s"] == {"median": 0.5, "max": 8.0, "training_jobs": 3}
    assert costs["jobs"] == 4 and costs["fixed_cost_share"] == round(4 * 0.5 / 100.0, 3)
    with pytest.raises(SystemExit, match="no benchmarked training jobs"):
        bench_sweep.sweep_costs(results, tmp_path / "elsewhere")


def test_batches_apply_to_every_network_or_to_one(bench_lightning):
    limits = bench_lightning.batch_limits
    parser = argparse.ArgumentParser()
    networks = ["mlp", "cnn", "irnn"]
    assert limits(parser, [], networks) == {}
    assert limits(parser, ["50"], networks) == {"mlp": 50, "cnn": 50, "irnn": 50}
    assert limits(parser, ["cnn=100"], networks) == {"cnn": 100}
    assert limits(parser, ["50", "cnn=100"], networks) == {"mlp": 50, "cnn": 100, "irnn": 50}


@pytest.mark.parametrize("value, message", [("lstm=5", "'lstm' is not among --networks"),
                                            ("cnn=0", "positive integer"), ("cnn=x", "positive integer")])
def test_bad_batches_are_refused_with_the_reason(bench_lightning, value, message, capsys):
    with pytest.raises(SystemExit):
        bench_lightning.batch_limits(argparse.ArgumentParser(), [value], ["mlp", "cnn"])
    assert message in capsys.readouterr().err
