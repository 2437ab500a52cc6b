"""fsw.figures on a small synthetic records table: every figure is written as non-empty PNG and SVG."""

import pandas as pd
import pytest

from fsw import report, stats
from fsw.figures import false_positives as plots
from fsw.figures import marked as figures
from fsw.report import attacks as report_attacks


@pytest.fixture(scope="module")
def records():
    return stats.simulate_records(networks=("mlp", "irnn"), eps=(0.025, 0.1, 0.25), key_sizes=(20, 50),
                                  null_seeds=range(1, 4), seed=7)


def assert_written(paths, names):
    assert {p.name for p in paths} == {f"{n}.{fmt}" for n in names for fmt in plots.FORMATS}
    for path in paths:
        assert path.stat().st_size > 1000, path
    svg = next(p for p in paths if p.suffix == ".svg").read_text()
    assert svg.lstrip().startswith("<?xml") and "</svg>" in svg


def test_plot_rates(records, tmp_path):
    table = stats.rates(stats.annotate(records))
    assert_written(plots.plot_rates(table, "paper_binomial", tmp_path), ["rates_paper_binomial"])
    with pytest.raises(ValueError, match="no rows"):
        plots.plot_rates(table, "nope", tmp_path)


def test_plot_null_accuracy_and_theta(records, tmp_path):
    assert_written(plots.plot_null_accuracy(records, tmp_path), ["null_key_accuracy"])
    assert_written(plots.plot_theta(tmp_path, key_sizes=range(10, 210, 10)), ["theta_vs_key_size"])
    svg = (tmp_path / "theta_vs_key_size.svg").read_text()
    assert "key size l" in svg and "z = 0.05" in svg and "z = 0.01" in svg  # labelled axes and legend


def test_write_false_positive_outputs(records, tmp_path):
    paths, tables = report.write_false_positive_outputs(records, tmp_path / "tables", plot_dir=tmp_path / "plots",
                                                       rules=["true_adv_binomial"], curve_repeats=2)
    assert "marked_default" in tables["decisions"]
    expected = plots.expected_outputs(tmp_path / "tables", tmp_path / "plots", rules=["true_adv_binomial"])
    assert len(expected) == 11 + 2 * 8  # 11 tables; paper, default, one more rule + 5 figures, PNG + SVG
    assert sorted(paths) == sorted(expected)
    assert all(p.stat().st_size > 0 for p in paths)


def test_outputs_without_null_models(tmp_path):
    """Before any null model is verified the report still works: no null-accuracy figure, FPR empty."""
    records = stats.simulate_records(networks=("mlp",), eps=(0.1,), key_sizes=(20,), null_seeds=[])
    paths, _ = report.write_false_positive_outputs(records, tmp_path, rules=[])
    assert not any("calibration_curve.png" == p.name for p in paths)
    assert not any("null_key_accuracy" in p.name for p in paths)
    assert (tmp_path / "rates_paper_binomial.png").stat().st_size > 0


def test_plot_calibration_curve(records, tmp_path):
    curve = stats.calibration_curve(records, ["empirical_betabinomial_by_arch"], sizes=(2, 3), repeats=2)
    assert_written(plots.plot_calibration_curve(curve, tmp_path), ["calibration_curve"])


# --------------------------------------------------------------------------------------------------
# fsw.figures.marked: the report's categories, on the crafted records of tests/test_report.py


def test_plot_robustness_in_the_attacks_order(tmp_path):
    from tests.test_report import attack_records, decide, key

    records = pd.DataFrame(attack_records() + attack_records(key(network="irnn", eps=0.25)))
    table = report_attacks.robustness_table(decide(records))
    paths = figures.plot_robustness(table, "quantize", tmp_path, report_attacks.level_axis("quantize"), stats.DEFAULT_RULE)
    assert_written(paths, ["robustness_quantize"])
    svg = (tmp_path / "robustness_quantize.svg").read_text()
    ticks = [svg.index(f">{label}<") for label in ("unattacked", "16", "8", "4", "2")]
    assert ticks == sorted(ticks)  # tick labels drawn left to right: fewer bits is stronger
    assert "bits per weight" in svg and "θ = 42" in svg and "key accuracy" in svg and "ε = 0.25" in svg
    # the recommended rule counts true adversaries: its threshold gets a row of its own
    assert "true-adversary accuracy" in svg
    with pytest.raises(ValueError, match="no rows"):
        figures.plot_robustness(table, "rtal", tmp_path, "epochs", stats.DEFAULT_RULE)


def test_plot_robustness_with_a_key_error_rule(tmp_path):
    from tests.test_report import attack_records, decide

    table = report_attacks.robustness_table(decide(pd.DataFrame(attack_records())))
    figures.plot_robustness(table, "ftll", tmp_path, "epochs", stats.PAPER_RULE)
    assert "true-adversary accuracy" not in (tmp_path / "robustness_ftll.svg").read_text()


def test_plot_extraction(tmp_path):
    from tests.test_report import decide, extraction_records

    table = report_attacks.extraction_table(decide(pd.DataFrame(extraction_records(survives=True))))
    assert_written(figures.plot_extraction(table, tmp_path, report_attacks.level_axis("extract_mlp")), ["extraction_curves"])
    svg = (tmp_path / "extraction_curves.svg").read_text()
    assert "with FGSM augmentation" in svg and "without FGSM augmentation" in svg and "query budget" in svg
    with pytest.raises(ValueError):
        figures.plot_extraction(table.iloc[:0], tmp_path, "queries")


def test_plot_accuracy_drop_and_key_errors(records, tmp_path):
    from tests.test_report import embedding

    table = embedding({0.025: 0.1, 0.1: 0.3, 0.25: 0.9})[1]
    assert_written(figures.plot_accuracy_drop(table, tmp_path, 0.5), ["accuracy_drop"])
    assert "paper: ≤ 0.5 points" in (tmp_path / "accuracy_drop.svg").read_text()
    assert_written(figures.plot_key_errors(stats.annotate(records), tmp_path), ["key_errors"])
    svg = (tmp_path / "key_errors.svg").read_text()
    assert all(label in svg for label in figures.ROLES.values()) and "marked below θ/l" in svg
