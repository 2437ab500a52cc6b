"""fsw.plots on a small synthetic records table: every figure is written as non-empty PNG and SVG."""

import pytest

from fsw import plots, stats


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
    paths = plots.write_false_positive_outputs(records, tmp_path / "tables", plot_dir=tmp_path / "plots",
                                               rules=["true_adv_binomial"], curve_repeats=2)
    expected = plots.expected_outputs(tmp_path / "tables", tmp_path / "plots", rules=["true_adv_binomial"])
    assert len(expected) == 11 + 2 * 8  # 11 tables; paper, default, one more rule + 5 figures, PNG + SVG
    assert sorted(paths) == sorted(expected)
    assert all(p.stat().st_size > 0 for p in paths)


def test_outputs_without_null_models(tmp_path):
    """Before any null model is verified the report still works: no null-accuracy figure, FPR empty."""
    records = stats.simulate_records(networks=("mlp",), eps=(0.1,), key_sizes=(20,), null_seeds=[])
    paths = plots.write_false_positive_outputs(records, tmp_path, rules=[])
    assert not any("calibration_curve.png" == p.name for p in paths)
    assert not any("null_key_accuracy" in p.name for p in paths)
    assert (tmp_path / "rates_paper_binomial.png").stat().st_size > 0


def test_plot_calibration_curve(records, tmp_path):
    curve = stats.calibration_curve(records, ["empirical_betabinomial_by_arch"], sizes=(2, 3), repeats=2)
    assert_written(plots.plot_calibration_curve(curve, tmp_path), ["calibration_curve"])
