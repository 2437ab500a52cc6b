"""The on-demand benchmarks' command lines (their timings are never asserted: see benchmarks/)."""

import argparse
import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_lightning.py"


@pytest.fixture(scope="module")
def bench_lightning():
    sys.path.insert(0, str(SCRIPT.parent))  # as when run as a script: its sibling modules import
    spec = importlib.util.spec_from_file_location("bench_lightning", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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
