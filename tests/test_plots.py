"""fsw.figures on a small synthetic records table: every figure is written as non-empty PNG and SVG."""

import pandas as pd
import pytest

from fsw import report
from fsw.figures import marked as figures
from fsw.figures import ownership
from fsw.figures.style import FORMATS
from fsw.report import attacks as report_attacks
from fsw.stats.rules import annotate
from fsw.stats.simulate import simulate_records


@pytest.fixture(scope="module")
def records():
    return simulate_records(networks=("mlp", "irnn"), eps=(0.025, 0.1, 0.25), key_sizes=(20, 50), seed=7)


def assert_written(paths, names):
    assert {p.name for p in paths} == {f"{n}.{fmt}" for n in names for fmt in FORMATS}
    for path in paths:
        assert path.stat().st_size > 1000, path
    svg = next(p for p in paths if p.suffix == ".svg").read_text()
    assert svg.lstrip().startswith("<?xml") and "</svg>" in svg


def test_every_ownership_figure(records, tmp_path):
    paths, tables = report.write_ownership_outputs(records, tmp_path / "tables", tmp_path / "plots", 0.05,
                                                   "family_binomial", "transfer")
    figures_written = [p for p in paths if p.parent.name == "plots"]
    assert sorted(figures_written) == sorted(ownership.expected_outputs(tmp_path / "plots"))
    assert_written(figures_written, list(ownership.FIGURES))
    assert "marked_default" in tables["decisions"]
    detection = (tmp_path / "plots" / "detection.svg").read_text()
    assert "held-out unmarked models" in detection and "key strategy" in detection
    theta = (tmp_path / "plots" / "theta_vs_key_size.svg").read_text()
    assert "key size l" in theta and "z = 0.05" in theta and "z = 0.01" in theta


def test_detection_figure_needs_its_rule(records, tmp_path):
    _, tables = report.write_ownership_outputs(records, tmp_path, tmp_path, 0.05, "family_binomial", "transfer")
    with pytest.raises(ValueError, match="no rows"):
        ownership.plot_detection(tables["detection"], tmp_path, "nope")


# --------------------------------------------------------------------------------------------------
# fsw.figures.marked: the report's categories, on the crafted records of tests/test_report.py


def test_plot_robustness_in_the_attacks_order(tmp_path):
    from tests.test_report import attack_records, decide, key

    records = pd.DataFrame(attack_records() + attack_records(key(network="irnn", eps=0.25)))
    table = report_attacks.robustness_table(decide(records))
    paths = figures.plot_robustness(table, "quantize", tmp_path, report_attacks.level_axis("quantize"), "family_binomial")
    assert_written(paths, ["robustness_quantize"])
    svg = (tmp_path / "robustness_quantize.svg").read_text()
    ticks = [svg.index(f">{label}<") for label in ("unattacked", "16", "8", "4", "2")]
    assert ticks == sorted(ticks)  # tick labels drawn left to right: fewer bits is stronger
    assert "bits per weight" in svg and "recommended rule" in svg and "key accuracy" in svg and "ε = 0.25" in svg
    with pytest.raises(ValueError, match="no rows"):
        figures.plot_robustness(table, "rtal", tmp_path, "epochs", "family_binomial")


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
    assert_written(figures.plot_key_errors(annotate(records, "family_binomial", 0.05), tmp_path), ["key_errors"])
    svg = (tmp_path / "key_errors.svg").read_text()
    assert all(label in svg for label in figures.ROLES.values()) and "marked below θ/l" in svg
