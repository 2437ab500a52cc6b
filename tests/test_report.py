"""fsw.report on crafted records whose answers are known: level order, the level at which the mark is
lost, extraction, the paper-vs-fsw verdicts, and the whole stage on synthetic record files."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from fsw import report
from fsw.report import attacks as report_attacks
from fsw.report import paper as report_paper
from fsw.report import tables as report_tables
from fsw.stages import compose
from fsw.stats.decision import PAPER_RULE
from fsw.stats.rules import with_roles
from fsw.stats.simulate import simulate_records
from fsw.stats.tables import detection
from fsw.stats.tests import binomial_threshold

L = 100
THETA = binomial_threshold(L, 0.05)  # 42
DEFAULT_RULE = "family_binomial"
DEFAULT_THRESHOLD = 10  # the crafted recommended rule: marked iff fewer than 10 errors


def key(network="mlp", eps=0.1, seed=0, strategy="transfer"):
    return {"network": network, "seed": seed, "eps": eps, "key_size": L, "key_seed": seed, "strategy": strategy,
            "key_hash": f"{network}-{eps:g}-{L}-{strategy}", "z": 0.05, "queries": L}


def record(of, kind="marked", attack="none", level=0, test_acc=0.98, errors=0, true_errors=None,
           suspect=None, population=None):
    """One verify record; true_errors (default: all errors) of the errors are on true adversaries."""
    suspect_network, suspect_seed = suspect or (of["network"], of["seed"])
    true_errors = errors if true_errors is None else true_errors
    population = population or ("attacked" if attack.startswith(("prune", "quantize", "ft", "rt")) else
                                "extracted" if attack.startswith("extract") else "marked" if kind == "marked" else
                                "source" if suspect is None else "heldout")
    paper = {"marked": errors < THETA, "p_value": 0.5, "threshold": THETA}
    chosen = {"rule": DEFAULT_RULE, "marked": errors < DEFAULT_THRESHOLD, "p_value": 0.5,
              "threshold": DEFAULT_THRESHOLD}
    return {**of, "model_kind": kind, "population": population, "attack": attack, "level": level,
            "test_acc": test_acc, "key_errors": errors, "key_errors_true_adv": true_errors,
            "key_errors_false_adv": errors - true_errors, "suspect_network": suspect_network,
            "suspect_seed": suspect_seed, "suspect_split": "owner" if suspect is None else "attacker",
            "decision": {**chosen, "calibration_hash": "crafted"}, "paper_binomial": paper,
            "rules": {DEFAULT_RULE: chosen}}


def decide(records: pd.DataFrame) -> pd.DataFrame:
    """Decisions as annotate writes them (the count rules left out), with a recommended rule whose
    answers are known."""
    out = with_roles(records)
    for name, column in ((PAPER_RULE, "paper_binomial"), (DEFAULT_RULE, "decision")):
        for field in ("marked", "threshold", "p_value"):
            out[f"{field}_{name}"] = out[column].map(lambda d, f=field: d[f])
    out["decision_rule"] = DEFAULT_RULE
    out["marked_default"] = out[f"marked_{DEFAULT_RULE}"]
    return out


def attack_records(of=None):
    """The marked MLP (0.98) under three attacks, levels listed in a scrambled order:
    prune_global: mark lost (paper's rule) at 0.75 with 3 points lost, ruined (5 points) at 0.9;
    quantize (bits, fewer = stronger): 1 point lost at 4 bits, mark lost and model ruined at 2;
    ftll: nothing happens at its levels."""
    of = of or key()
    rows = [record(of)]
    for level, acc, errors in [(0.9, 0.60, 60), (0.25, 0.978, 2), (0.75, 0.95, 45), (0.5, 0.975, 5)]:
        rows.append(record(of, attack="prune_global", level=level, test_acc=acc, errors=errors))
    for level, acc, errors in [(4, 0.97, 3), (16, 0.98, 0), (2, 0.20, 50), (8, 0.979, 1)]:
        rows.append(record(of, attack="quantize", level=level, test_acc=acc, errors=errors))
    for level, acc, errors in [(2, 0.978, 2), (1, 0.979, 1)]:
        rows.append(record(of, attack="ftll", level=level, test_acc=acc, errors=errors))
    return rows


def test_levels_are_ordered_weakest_first():
    assert report_attacks.ordered_levels("quantize", [4, 16, 2, 8]) == [16, 8, 4, 2]  # fewer bits = stronger
    assert report_attacks.ordered_levels("prune_global", [0.9, 0.25, 0.5]) == [0.25, 0.5, 0.9]
    assert report_attacks.ordered_levels("extract_mlp_fgsm", [5000, 1000]) == [1000, 5000]


def test_robustness_table_orders_levels_and_measures_the_drop():
    table = report_attacks.robustness_table(decide(pd.DataFrame(attack_records())))
    quantize = table[table.attack == "quantize"]
    assert list(quantize.level_label) == [report_attacks.UNATTACKED, "16", "8", "4", "2"]
    assert list(quantize.position) == [0, 1, 2, 3, 4]
    assert quantize.acc_drop_points.round(6).tolist() == [0.0, 0.0, 0.1, 1.0, 78.0]
    assert list(table[table.attack == "prune_global"].level_label) == [report_attacks.UNATTACKED, "0.25", "0.5", "0.75", "0.9"]
    assert set(table.attack) == {"prune_global", "quantize", "ftll"}


def test_mark_lost_against_accuracy_drops():
    table = report_attacks.mark_lost_table(report_attacks.robustness_table(decide(pd.DataFrame(attack_records()))), ruin_points=5)
    rows = table.set_index("attack")
    prune, quantize, ftll = rows.loc["prune_global"], rows.loc["quantize"], rows.loc["ftll"]
    # pruning: 45 errors >= theta at 0.75 (3 points lost: still useful) -> lost before ruin
    assert (prune.lost_paper, prune.drop_1pt, prune.drop_5pt, prune.drop_10pt) == ("0.75", "0.75", "0.9", "0.9")
    assert prune.lost_before_ruin_paper == report_attacks.YES
    # the crafted default rule loses it at 0.75 too (45 errors) but not at 0.5 (5 < 10)
    assert prune.lost_default == "0.75" and prune.lost_before_ruin_default == report_attacks.YES
    # quantization: in bits order, 1 point is lost at 4 bits; the mark only with the model, at 2 bits
    assert (quantize.lost_paper, quantize.drop_1pt, quantize.drop_5pt) == ("2", "4", "2")
    assert quantize.lost_before_ruin_paper == report_attacks.NO
    assert quantize.levels == "16, 8, 4, 2"
    # fine-tuning at these levels neither removes the mark nor ruins the model
    assert ftll.lost_paper == ftll.drop_1pt == report_attacks.NOT_REACHED
    assert ftll.lost_before_ruin_paper == report_attacks.UNDETERMINED


def test_mark_lost_when_the_marked_model_is_not_detected():
    of = key()
    rows = [record(of, errors=50), record(of, attack="ftll", level=1, test_acc=0.5, errors=50)]
    table = report_attacks.mark_lost_table(report_attacks.robustness_table(decide(pd.DataFrame(rows))), ruin_points=5)
    assert table.lost_paper.iloc[0] == report_attacks.UNATTACKED
    assert table.lost_before_ruin_paper.iloc[0] == report_attacks.UNDETERMINED  # nothing to lose


def test_pruning_table_has_the_papers_shape():
    table = report_attacks.pruning_table(report_attacks.robustness_table(decide(pd.DataFrame(attack_records()))))
    assert list(table.rate) == [0.0, 0.25, 0.5, 0.75, 0.9]
    assert list(table.detected_paper) == [True, True, True, False, False]
    assert {"test_acc", "key_errors", "theta", "detected_default"} <= set(table.columns)


def extraction_records(survives: bool):
    of = key(eps=0.25)
    rows = [record(of, test_acc=0.98)]
    for fgsm in ("", "_fgsm"):
        for budget, acc in ((1000, 0.90), (5000, 0.95)):
            errors = 5 if survives else 45
            rows.append(record(of, attack=f"extract_mlp{fgsm}", level=budget, test_acc=acc, errors=errors))
    for seed in (1, 2):
        rows.append(record(of, kind="unmarked", errors=30, true_errors=28, suspect=("mlp", seed)))
    return rows


@pytest.mark.parametrize("survives", [True, False])
def test_extraction_table_and_verdict(survives):
    decisions = decide(pd.DataFrame(extraction_records(survives)))
    table = report_attacks.extraction_table(decisions)
    assert len(table) == 4 and set(table.augmentation) == {"none", "FGSM"} and set(table.surrogate) == {"mlp"}
    assert list(table.queries) == [1000, 5000, 1000, 5000]
    assert (table.victim_acc == 0.98).all() and (table.null_key_acc == 0.7).all()
    verdict = report_attacks.extraction_verdict(table)
    assert verdict.startswith("The mark survives" if survives else "The mark does not survive")
    assert "4 of 4" in verdict if survives else "0 of 4" in verdict
    assert report_attacks.robustness_table(decisions).empty  # extraction is not a removal attack


def embedding(drops_by_eps: dict[float, float], epochs: dict[float, int] | None = None) -> tuple:
    """Records of marked models and their sources with the given drops (points), and their embed metrics."""
    rows, metrics = [], []
    for eps, drop in drops_by_eps.items():
        of = key(eps=eps)
        rows += [record(of, test_acc=0.98 - drop / 100), record(of, kind="unmarked", errors=50)]
        metrics.append({"network": "mlp", "seed": 0, "eps": eps, "key_size": L, "strategy": "transfer",
                        "test_acc_before": 0.98,
                        "test_acc_after": 0.98 - drop / 100, "key_acc_before": 0.5, "key_acc_after": 1.0,
                        "epochs_used": (epochs or {}).get(eps, 3), "stitched": True, "wall_time_s": 1.0})
    return pd.DataFrame(rows), report_tables.embedding_table(pd.DataFrame(metrics))


def test_claim_embedding_cost_verdicts():
    records, table = embedding({0.025: 0.1, 0.1: 0.2, 0.25: 0.3})
    assert report_paper.claim_embedding_cost(report_tables.summary(records), table)["verdict"] == report_paper.AGREES
    records, table = embedding({0.025: 0.1, 0.1: 0.2, 0.25: 1.0})
    claim = report_paper.claim_embedding_cost(report_tables.summary(records), table)
    assert claim["verdict"] == report_paper.PARTLY and claim["explanation"].startswith("The drop grows with ε")
    assert "worst 1.00 points (mlp, ε = 0.25" in claim["fsw"]
    # the worst key is not at the largest eps but took the most epochs
    records, table = embedding({0.025: 2.0, 0.1: 0.6, 0.25: 0.7}, epochs={0.025: 12})
    claim = report_paper.claim_embedding_cost(report_tables.summary(records), table)
    assert claim["verdict"] == report_paper.DISAGREES and "12 embedding epochs" in claim["explanation"]
    # another scheme's keys of the same network, seed, eps and size are other keys
    both = pd.concat([table, table.assign(strategy="backdoor", epochs_used=1)], ignore_index=True)
    claim = report_paper.claim_embedding_cost(report_tables.summary(records), both)
    assert "12 embedding epochs" in claim["explanation"]


def test_claim_robustness_verdicts():
    mark_lost = report_attacks.mark_lost_table(report_attacks.robustness_table(decide(pd.DataFrame(attack_records()))), 5)
    pruning = report_paper.claim_robustness("pruning", mark_lost, 5, "transfer")
    assert pruning["verdict"] == report_paper.DISAGREES and "prune_global at 0.75 (mlp, ε = 0.1)" in pruning["explanation"]
    compression = report_paper.claim_robustness("compression", mark_lost, 5, "transfer")
    assert compression["verdict"] == report_paper.AGREES  # quantize: "no"
    fine_tuning = report_paper.claim_robustness("fine-tuning", mark_lost, 5, "transfer")
    assert fine_tuning["verdict"] == report_attacks.UNDETERMINED and "stronger levels" in fine_tuning["explanation"]
    # where the paper's rule on the paper's keys answers otherwise, the verdict says so
    paper_keys = report_attacks.mark_lost_table(report_attacks.robustness_table(
        decide(pd.DataFrame(attack_records(key(strategy="paper")))).assign(marked_default=True)), 5)
    both = pd.concat([mark_lost, paper_keys.assign(lost_before_ruin_paper=report_attacks.NO)])
    assert "The paper's rule on the paper's keys answers otherwise" in report_paper.claim_robustness(
        "pruning", both, 5, "transfer")["explanation"]


def null_records(errors_paper_keys: int, errors_ours: int, models: int = 30):
    """A paper key whose held-out models all make `errors_paper_keys` errors (1 on true adversaries),
    and a transfer key whose held-out models make `errors_ours`."""
    rows = []
    for strategy, errors in (("paper", errors_paper_keys), ("transfer", errors_ours)):
        of = key(strategy=strategy)
        rows += [record(of), record(of, kind="unmarked", errors=50)]
        rows += [record(of, kind="unmarked", errors=errors, true_errors=min(errors, 1), suspect=("cnn", seed))
                 for seed in range(models)]
    return decide(pd.DataFrame(rows))


def test_claim_false_positives_verdicts():
    # held-out models agree with most of the paper key: its rule calls them all marked; ours does not
    decisions = null_records(errors_paper_keys=5, errors_ours=60)
    found = detection(decisions, DEFAULT_RULE, "transfer", rules=[PAPER_RULE, DEFAULT_RULE])
    claim = report_paper.claim_false_positives(decisions, found, 0.05, "transfer")
    assert claim["verdict"] == report_paper.AGREES and "FPR 0.0%" in claim["fsw"] and "100.0%" in claim["fsw"]
    assert "The paper's rule says otherwise" in claim["explanation"]
    decisions = null_records(errors_paper_keys=5, errors_ours=5)
    found = detection(decisions, DEFAULT_RULE, "transfer", rules=[PAPER_RULE, DEFAULT_RULE])
    assert report_paper.claim_false_positives(decisions, found, 0.05, "transfer")["verdict"] == report_paper.DISAGREES


def test_claim_detection():
    decisions = decide(pd.DataFrame([record(key()), record(key(eps=0.25), errors=3)]))
    claim = report_paper.claim_detection(decisions, pd.DataFrame())
    assert claim["verdict"] == report_paper.AGREES and "θ = 42 in the records" in claim["fsw"]
    decisions = decide(pd.DataFrame([record(key()), record(key(eps=0.25), errors=45)]))
    claim = report_paper.claim_detection(decisions, pd.DataFrame())
    assert claim["verdict"] == report_paper.PARTLY and "1 of 2" in claim["fsw"] and "45-45" in claim["explanation"]


def run_report(tmp_path) -> Path:
    """The stage on synthetic record files (simulated keys of two networks with null models, plus
    attacks and extraction of one key), one training metrics file and one benchmark file; returns
    the results folder, laid out as the workflow lays it out."""
    simulated = simulate_records(networks=("mlp", "irnn"), eps=(0.1, 0.25), key_sizes=(L,),
                                 strategies=("transfer",), seed=3)
    # attacks and extraction of the simulated mlp key of eps 0.25 (same key hash), without its records
    crafted = pd.DataFrame(attack_records(key(eps=0.25))[1:] + extraction_records(survives=False)[1:5])
    records = pd.concat([simulated[simulated.attack == "none"], crafted])
    results = tmp_path / "results"
    paths = []
    for i, row in enumerate(records.to_dict("records")):
        paths.append(results / "verify" / f"{i}.json")
        paths[-1].parent.mkdir(parents=True, exist_ok=True)
        paths[-1].write_text(json.dumps({k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}))
    metrics = results / "train" / "owner" / "mlp" / "s0" / "metrics.json"
    metrics.parent.mkdir(parents=True)
    metrics.write_text(json.dumps({"network": "mlp", "seed": 0, "split": "owner", "test_acc": 0.98, "val_acc": 0.98,
                                   "epochs": 10, "train_size": 45000, "wall_time_s": 60.0}))
    bench = results / "benchmarks" / "train" / "mlp" / "s0.tsv"
    bench.parent.mkdir(parents=True)
    bench.write_text("s\th:m:s\tmax_rss\tcpu_time\n61.5\t0:01:01\t900.0\t58.25\n")
    # a rule with one job writes its benchmark file straight under benchmarks/
    (results / "benchmarks" / "figure1.tsv").write_text("s\th:m:s\tmax_rss\tcpu_time\n9.5\t0:00:09\t300.0\t8.5\n")
    # the training job ran in the warm worker: its fork's usage file, beside its log, has its CPU time
    usage = results / "logs" / "train" / "mlp" / "s0.usage.json"
    usage.parent.mkdir(parents=True)
    usage.write_text(json.dumps({"cpu_s": 60.75, "max_rss_mb": 950.0}))
    report.run(compose("report", [
        f"records=[{','.join(map(str, paths))}]", f"table_csv={results}/tables/verification.csv",
        f"table_md={results}/tables/verification.md", f"tables_dir={results}/tables",
        f"plot_dir={results}/plots", f"report_dir={results}/report", f"train_metrics=[{metrics}]",
        f"benchmarks_dir={results}/benchmarks", f"logs_dir={results}/logs"]))
    return results


def test_run_writes_every_category(tmp_path):
    results = run_report(tmp_path)
    folders = {p.name for p in (results / "report").iterdir()}
    assert folders == set(report.CATEGORIES)
    written = {p.relative_to(results / "report").as_posix() for p in (results / "report").rglob("*.*")}
    for expected in ("training/training.csv", "attacks/mark_lost.md", "attacks/robustness_quantize.png",
                     "attacks/pruning.csv", "extraction/extraction.csv", "extraction/extraction_curves.svg",
                     "ownership/key_errors.png", "paper/paper_vs_fsw.md", "sweep/runtime.csv",
                     "sweep/machine.csv"):
        assert expected in written, expected
    tables = {path for path in written if path.endswith(".csv")}
    assert {path.replace(".csv", ".html") for path in tables} <= written  # every table also for the HTML report
    assert "does not survive extraction" in (results / "report" / "extraction" / "extraction.html").read_text()
    verification = pd.read_csv(results / "tables" / "verification.csv")
    assert list(verification.columns[:7]) == ["network", "seed", "eps", "key_size", "strategy", "key_hash", "population"]
    page = (results / "tables" / "verification.html").read_text()
    assert page.count("<tr") == len(verification) + 1 and f"{len(verification)} rows" in page
    assert "embedding/accuracy_drop.png" not in written  # no embed metrics given
    runtime = pd.read_csv(results / "report" / "sweep" / "runtime.csv")
    assert runtime.to_dict("records") == [
        {"rule": "figure1", "jobs": 1, "total_s": 9.5, "mean_s": 9.5, "max_s": 9.5, "cpu_s": 8.5},
        {"rule": "train", "jobs": 1, "total_s": 61.5, "mean_s": 61.5, "max_s": 61.5, "cpu_s": 60.75},
    ]
    comparison = pd.read_csv(results / "report" / "paper" / "paper_vs_fsw.csv")
    assert len(comparison) == 6 and set(comparison.verdict) <= {report_paper.AGREES, report_paper.PARTLY, report_paper.DISAGREES,
                                                                 report_attacks.UNDETERMINED}
    assert "does not survive extraction" in (results / "report" / "extraction" / "extraction.md").read_text()
