"""Each stage's run(cfg) on tiny real data, chained as the workflow chains them."""

import json

import pandas as pd
import pytest

from fsw import report, verify
from fsw.data import load_splits
from fsw.inference import accuracy
from fsw.io import load_model, read_json
from tests.conftest import TINY_MLP_FLOOR, tiny


def test_train_metrics(trained_mlp):
    metrics = read_json(trained_mlp.parent / "metrics.json")
    assert metrics["network"] == "mlp" and metrics["train_size"] == 2000
    assert metrics["dataset"] == "mnist" and metrics["test_acc"] > TINY_MLP_FLOOR["mnist"]


def test_every_record_carries_the_resolved_config_that_made_it(trained_mlp, mlp_key, marked_mlp, tmp_path):
    from fsw import extract
    from fsw.attack import stage as attack

    train = read_json(trained_mlp.parent / "metrics.json")["config"]
    assert train["network"]["epochs"] == 5 and train["model_out"] == str(trained_mlp)
    assert train["batch_size"] == 128  # ${network.batch_size}, resolved
    assert read_json(mlp_key.parent / "keygen.json")["config"]["keygen"]["size"] == 20
    assert read_json(marked_mlp.parent / "metrics.json")["config"]["embed"]["batches_per_epoch"] == 10
    verify.run(tiny("verify", f"model_in={marked_mlp}", f"key_in={mlp_key}", f"out={tmp_path}/v.json", "decision.z=0.01"))
    assert read_json(tmp_path / "v.json")["config"]["decision"]["z"] == 0.01
    attack.run(tiny("attack", f"model_in={marked_mlp}", f"model_out={tmp_path}/a.pt", f"metrics_out={tmp_path}/a.json",
                    "attack=prune_global", "attack.level=0.5"))
    assert read_json(tmp_path / "a.json")["config"]["attack"]["level"] == 0.5
    extract.run(tiny("extract", f"victim_in={marked_mlp}", "network=linear", "network.epochs=1", "budget=200",
                     f"model_out={tmp_path}/s.pt", f"metrics_out={tmp_path}/s.json", "trainer.enable_progress_bar=false"))
    assert read_json(tmp_path / "s.json")["config"]["budget"] == 200


def test_verify_refuses_a_key_other_than_the_committed_one(marked_mlp, mlp_key, tmp_path):
    from fsw.errors import KeyFileError
    from fsw.key import load_key

    committed = load_key(mlp_key).hash
    with pytest.raises(KeyFileError, match="not the committed key"):
        verify.run(tiny("verify", f"model_in={marked_mlp}", f"key_in={mlp_key}", f"out={tmp_path}/v.json",
                        f"key_commitment={'0' * 64}"))
    assert not (tmp_path / "v.json").exists()
    verify.run(tiny("verify", f"model_in={marked_mlp}", f"key_in={mlp_key}", f"out={tmp_path}/v.json",
                    f"key_commitment={committed.upper()}"))
    assert read_json(tmp_path / "v.json")["key_committed"] is True


def test_keygen_diagnostics(mlp_key):
    diagnostics = read_json(mlp_key.parent / "keygen.json")
    assert diagnostics["true_adversaries_found"] >= 10 and diagnostics["false_adversaries_found"] >= 10
    assert diagnostics["pool_size"] >= 20


def test_embed_stitches_the_key(marked_mlp):
    metrics = read_json(marked_mlp.parent / "metrics.json")
    assert metrics["key_acc_before"] == 0.5  # half the key are true adversaries of the source model
    assert metrics["key_acc_after"] == 1.0 and metrics["stitched"]
    assert metrics["test_acc_drop"] < 0.05


def test_verify_marked_and_unmarked_then_report(trained_mlp, marked_mlp, mlp_key, tmp_path):
    records = []
    for kind, model in (("marked", marked_mlp), ("unmarked", trained_mlp)):
        out = tmp_path / f"{kind}.json"
        population = "marked" if kind == "marked" else "source"
        verify.run(tiny("verify", f"model_in={model}", f"key_in={mlp_key}", f"out={out}", f"suspect.kind={kind}",
                        f"suspect.population={population}"))
        records.append(out)
    marked, unmarked = (read_json(p) for p in records)
    paper = marked["paper_binomial"]
    assert paper["marked"] and marked["key_errors"] < paper["threshold"] == 6
    assert marked["decision"]["rule"] == "family_binomial" and marked["decision"]["marked"]
    assert not unmarked["paper_binomial"]["marked"] and unmarked["key_errors"] == 10  # exactly the true adversaries
    assert marked["queries"] == 20 and marked["key_hash"] == unmarked["key_hash"]
    for record, model in ((marked, marked_mlp), (unmarked, trained_mlp)):
        # read from the model file, where the stage that wrote it recorded it: the same number
        net, _, _ = load_model(model)
        test = load_splits(tiny("verify", "key_in=k", "out=o").data).test
        assert record["test_acc"] == accuracy(net, test.x, test.y)
    for field in ("network", "seed", "eps", "key_size", "strategy", "model_kind", "population", "test_acc",
                  "key_errors", "answers", "z", "decision", "paper_binomial", "rules", "key_hash", "fsw_version",
                  "git_commit"):
        assert field in marked

    csv, md = tmp_path / "t.csv", tmp_path / "t.md"
    report.run(tiny("report", f"records=[{records[0]},{records[1]}]", f"table_csv={csv}", f"table_md={md}",
                      f"tables_dir={tmp_path}/tables", f"plot_dir={tmp_path}/plots"))
    table = pd.read_csv(csv)
    assert len(table) == 2 and set(table.model_kind) == {"marked", "unmarked"}
    assert "detected_marked" in md.read_text() and json.dumps(marked["key_errors"]) in md.read_text()
