"""fsw.stats: exact thresholds and sizes, intervals, calibration without self-judgement, tables."""

from fractions import Fraction
from math import comb

import numpy as np
import pandas as pd
import pytest

from fsw import stats
from fsw.stats import binomial_p_value, binomial_threshold


def exact_cdf(k: int, n: int, p: Fraction = Fraction(1, 2)) -> Fraction:
    """P[Binomial(n, p) <= k] in exact rational arithmetic (independent of scipy)."""
    return sum((comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k + 1)), Fraction(0))


def exact_threshold(n: int, z: Fraction, p: Fraction = Fraction(1, 2)) -> int:
    """The largest t with P[Bin(n, p) <= t - 1] < z, by brute force."""
    return max(t for t in range(n + 2) if t == 0 or exact_cdf(t - 1, n, p) < z)


# --- theta, p-value, attained size against exact rational values ---------------------------------

@pytest.mark.parametrize("n", [1, 2, 5, 10, 20, 37, 50, 100, 200])
@pytest.mark.parametrize("z", [Fraction(1, 20), Fraction(1, 100), Fraction(1, 5)])
def test_binomial_threshold_is_exact(n, z):
    assert binomial_threshold(n, float(z)) == exact_threshold(n, z)


# The thresholds at z = 0.05 stated in the paper (l = 100 -> 42) and beyond.
PAPER_TABLE = {10: 2, 20: 6, 50: 19, 100: 42, 200: 88, 500: 232, 1000: 474}


@pytest.mark.parametrize("key_size,expected", PAPER_TABLE.items())
def test_paper_theta_table(key_size, expected):
    assert binomial_threshold(key_size, 0.05) == expected


@pytest.mark.parametrize("bad", [{"n": 0, "z": 0.05}, {"n": 10, "z": 0.0}, {"n": 10, "z": 1.5}])
def test_binomial_threshold_rejects_bad_input(bad):
    with pytest.raises(ValueError):
        binomial_threshold(**bad)


@pytest.mark.parametrize("n,p", [(50, Fraction(1, 5)), (50, Fraction(3, 10)), (20, Fraction(9, 10)), (30, Fraction(0))])
def test_binomial_threshold_other_null_rates(n, p):
    assert stats.binomial_threshold(n, 0.05, float(p)) == exact_threshold(n, Fraction(1, 20), p)


def test_binomial_threshold_known_values_both_levels():
    # z = 0.05: the paper's l = 100 -> 42; z = 0.01 from exact sums
    assert [binomial_threshold(l, 0.05) for l in (20, 50, 100, 200)] == [6, 19, 42, 88]
    assert [binomial_threshold(l, 0.01) for l in (20, 50, 100, 200)] == [exact_threshold(l, Fraction(1, 100)) for l in (20, 50, 100, 200)]
    assert binomial_threshold(100, 0.01) == 38


@pytest.mark.parametrize("n,t", [(100, 42), (100, 38), (20, 6), (50, 19), (10, 0)])
def test_attained_size_exact(n, t):
    assert stats.attained_size(n, t) == pytest.approx(float(exact_cdf(t - 1, n)) if t > 0 else 0.0, rel=1e-12, abs=1e-300)


def test_attained_size_never_exceeds_z():
    for n in range(1, 301):
        for z in (0.05, 0.01):
            assert stats.attained_size(n, binomial_threshold(n, z)) < z
    assert stats.attained_size(100, 42) == pytest.approx(0.04431304005703, rel=1e-9)


@pytest.mark.parametrize("m,n", [(0, 10), (3, 10), (41, 100), (42, 100), (50, 100), (100, 100)])
def test_p_value_exact(m, n):
    assert binomial_p_value(m, n) == pytest.approx(float(exact_cdf(m, n)), rel=1e-10)


def test_paper_rule_is_p_value_below_z():
    for n in (20, 100):
        for m in range(n + 1):
            assert (m < binomial_threshold(n, 0.05)) == (binomial_p_value(m, n) < 0.05)


# --- intervals, conformal thresholds, beta-binomial -------------------------------------------

def test_clopper_pearson_known_values():
    low, high = stats.clopper_pearson(0, 10)
    assert low == 0.0 and high == pytest.approx(1 - 0.025 ** 0.1, rel=1e-9)
    low, high = stats.clopper_pearson(10, 10)
    assert low == pytest.approx(0.025 ** 0.1, rel=1e-9) and high == 1.0
    low, high = stats.clopper_pearson(5, 10)
    assert (low, high) == pytest.approx((0.18708602, 0.81291398), abs=1e-7)
    assert all(np.isnan(stats.clopper_pearson(0, 0)))


def test_min_null_models():
    assert stats.min_null_models(0.05) == 19
    assert stats.min_null_models(0.01) == 99
    assert stats.min_null_models(0.1) == 9


def test_conformal_threshold_ranks():
    nulls = list(range(30, 49))  # 19 nulls
    assert stats.conformal_threshold(nulls, 0.05) == 30  # marked iff fewer errors than every null
    assert stats.conformal_threshold(nulls[:-1], 0.05) == 0  # 18 nulls: cannot reject at 5%
    assert stats.conformal_threshold(list(range(39)), 0.05) == 1  # rank 2 of 39
    assert stats.conformal_p_value(29, nulls) == pytest.approx(1 / 20)
    assert stats.conformal_p_value(30, nulls) == pytest.approx(2 / 20)


def test_conformal_rule_size_by_simulation():
    """Whatever the null distribution, P[new null < conformal threshold] <= z."""
    rng = np.random.default_rng(1)
    z, n_cal, trials = 0.1, 29, 4000
    q = rng.beta(3, 5, size=(trials, n_cal + 1))  # overdispersed, nothing like Binomial(l, 1/2)
    errors = rng.binomial(50, q)
    hits = sum(errors[i, -1] < stats.conformal_threshold(errors[i, :-1], z) for i in range(trials))
    assert hits / trials <= z + 3 * np.sqrt(z * (1 - z) / trials)


def test_beta_binomial_fit_and_threshold():
    flat = stats.BetaBinomial.fit([20, 20, 20, 20], 50)  # no spread: binomial
    assert np.isinf(flat.a) and flat.mean == pytest.approx(0.4)
    assert flat.threshold(0.05) == stats.binomial_threshold(50, 0.05, 0.4)
    wide = stats.BetaBinomial.fit([5, 40, 10, 35, 25, 15], 50)
    assert np.isfinite(wide.a) and wide.a / (wide.a + wide.b) == pytest.approx(130 / 300)
    t = wide.threshold(0.05)
    assert wide.cdf(t - 1) < 0.05 <= wide.cdf(t)
    assert t < flat.threshold(0.05) + 20 and wide.threshold(0.05) < stats.BetaBinomial.fit([22] * 6, 50).threshold(0.05)
    assert stats.BetaBinomial.fit([0, 0, 0], 50).threshold(0.05) == 0  # nulls never err: nothing to detect


# --- records: roles, decisions, calibration ---------------------------------------------------

def test_roles():
    records = stats.simulate_records(networks=("mlp", "cnn"), eps=(0.1,), key_sizes=(20,), null_seeds=[1, 2])
    role = stats.roles(records)
    source = records[role == stats.SOURCE]
    assert len(source) == 2 and (source.suspect_network == source.network).all()
    assert (source.suspect_seed == 0).all() and (source.key_errors_true_adv == 10).all()
    assert (role == stats.MARKED).sum() == 2 and (role == stats.ATTACKED).sum() == 2
    assert (role == stats.NULL).sum() == 2 * 5  # per key: 2 same-network seeds + 3 cnn/mlp seeds


def test_paper_rule_reproduces_verify_record():
    records = stats.simulate_records(seed=3)
    out = stats.evaluate(records, "paper_binomial")
    assert (out.marked.astype(bool) == records.marked).all()
    assert (out.threshold == records.theta).all()
    assert np.allclose(out.p_value, records.p_value)


def test_every_rule_decides_every_record():
    records = stats.simulate_records(null_seeds=range(1, 25), key_sizes=(100,), eps=(0.25,))
    for name in stats.RULES:
        out = stats.evaluate(records, name)
        assert out.marked.notna().all(), name
        assert (out.threshold >= 0).all()
        marked = stats.roles(records) == stats.MARKED
        assert out.marked[marked].all(), f"{name} misses a marked model with 0 errors"


def test_leave_one_model_out():
    records = stats.simulate_records(networks=("mlp",), eps=(0.1,), key_sizes=(50,), null_seeds=range(1, 8))
    role = stats.roles(records)
    out = stats.evaluate(records, "true_adv_conformal")
    assert (out.n_calibration[role == stats.NULL] == 6).all()  # 7 null models, itself left out
    assert (out.n_calibration[role != stats.NULL] == 7).all()
    # A null model with far fewer errors than the others is not protected by its own value
    extreme = records.copy()
    i = extreme.index[role == stats.NULL][0]
    extreme.loc[i, ["key_errors_true_adv", "key_errors"]] = 0
    thresholds = stats.evaluate(extreme, "true_adv_betabinomial").threshold
    others = extreme.loc[(role == stats.NULL) & (extreme.index != i), "key_errors_true_adv"]
    assert thresholds[i] == stats.BetaBinomial.fit(others, 25).threshold(0.05)


def test_pooling_over_keys_leaves_out_every_record_of_the_model():
    records = stats.simulate_records(networks=("mlp", "cnn"), eps=(0.1,), key_sizes=(50,), null_seeds=range(1, 4))
    records = pd.concat([records, records.assign(seed=1, key_seed=1, key_hash="k1")], ignore_index=True)
    role = stats.roles(records)
    by_key = stats.evaluate(records, "empirical_conformal", pool="key")
    by_setting = stats.evaluate(records, "empirical_conformal", pool="setting")
    nulls = role == stats.NULL
    assert (by_setting.n_calibration[nulls] > by_key.n_calibration[nulls]).all()
    # mlp/1 is the source of the seed-1 keys (not a null there) and a null of the seed-0 keys
    row = records.index[nulls & (records.network == "mlp") & (records.seed == 0)
                        & (records.suspect_network == "mlp") & (records.suspect_seed == 2)][0]
    same = records[nulls & (records.network == "mlp")]
    assert by_setting.n_calibration[row] == (
        (same.suspect_network + same.suspect_seed.astype(str)) != "mlp2").sum()


def test_calibration_seeds_split():
    records = stats.simulate_records(networks=("mlp",), eps=(0.1,), key_sizes=(50,), null_seeds=range(1, 9))
    out = stats.evaluate(records, "true_adv_betabinomial", calibration_seeds=[1, 2, 3, 4])
    role = stats.roles(records)
    cal = (role == stats.NULL) & records.suspect_seed.isin([1, 2, 3, 4])
    assert out.marked[cal].isna().all() and out.marked[~cal].notna().all()
    assert (out.n_calibration[~cal] == 4).all()


def test_unknown_rule_and_pool():
    records = stats.simulate_records(networks=("mlp",), eps=(0.1,), key_sizes=(20,))
    with pytest.raises(ValueError, match="unknown decision rule"):
        stats.decide(records, "nope")
    with pytest.raises(ValueError, match="pool"):
        stats.evaluate(records, "paper_binomial", pool="everything")


# --- tables -----------------------------------------------------------------------------------

def test_annotate_shows_paper_and_default_side_by_side():
    records = stats.simulate_records()
    annotated = stats.annotate(records, rules=["true_adv_binomial"])
    for column in ("marked_paper_binomial", f"marked_{stats.DEFAULT_RULE}", "marked_true_adv_binomial",
                   "threshold_paper_binomial", "p_value_paper_binomial", "marked_default", "role"):
        assert column in annotated
    assert (annotated.decision_rule == stats.DEFAULT_RULE).all()
    assert len(annotated) == len(records)


def test_rates_counts_and_intervals():
    records = stats.simulate_records(networks=("mlp",), eps=(0.025,), key_sizes=(100,), null_seeds=range(1, 11))
    table = stats.rates(stats.annotate(records))
    paper = table[table.rule == "paper_binomial"].iloc[0]
    nulls = records[stats.roles(records) == stats.NULL]
    expected_fp = int((nulls.key_errors < 42).sum())
    assert paper.n_null == 10 and paper.false_positives == expected_fp
    assert (paper.fpr_low, paper.fpr_high) == pytest.approx(stats.clopper_pearson(expected_fp, 10))
    assert paper.theta_paper == 42 and paper.attained_size_paper == pytest.approx(0.0443130, rel=1e-5)
    assert paper.n_marked == 1 and paper.tpr == 1.0 and paper.n_attacked == 1
    assert paper.queries_needed == 100
    assert table.set_index("rule").loc["true_adv_binomial", "queries_needed"] == 50


def test_null_accuracy_measures_departure_from_half():
    records = stats.simulate_records(networks=("mlp",), eps=(0.025,), key_sizes=(100,), null_seeds=range(1, 11))
    table = stats.null_accuracy(records)
    row = table[table.relation == "all"].iloc[0]
    nulls = records[stats.roles(records) == stats.NULL]
    assert row.n_null == 10
    assert row.key_acc_mean == pytest.approx(1 - nulls.key_errors.mean() / 100)
    assert row.departure_from_half == pytest.approx(nulls.key_errors.sum() / 1000 - 0.5)
    assert row.theta_paper_binomial == 42 and row.theta_empirical_conformal == 0  # 10 < 19 null models
    assert row.p_value_half < 1e-6


def test_rule_summary_orders_valid_rules_first():
    records = stats.simulate_records(null_seeds=range(1, 21), key_sizes=(100,), eps=(0.025,))
    summary = stats.rule_summary(stats.rates(stats.annotate(records)))
    assert set(summary.rule) == set(stats.RULES)
    paper = summary.set_index("rule").loc["paper_binomial"]
    assert not paper.valid and paper.fpr > 0.5  # the paper's rule fails at small eps
    assert summary.valid.iloc[0]


def test_write_tables(tmp_path):
    records = stats.simulate_records(networks=("mlp",), eps=(0.1,), key_sizes=(20,))
    paths, _ = stats.write_tables(records, tmp_path)
    assert {p.name for p in paths} >= {"decisions.csv", "rates.csv", "rates.md", "null_accuracy.md", "rules.md"}
    assert all(p.stat().st_size > 0 for p in paths)
    assert "paper_binomial" in (tmp_path / "rates.md").read_text()


@pytest.mark.parametrize("k,n", [(0, 7), (1, 7), (3, 20), (19, 20), (20, 20), (412, 1000)])
def test_clopper_pearson_equals_scipy_exact(k, n):
    from scipy.stats import binomtest

    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
    assert stats.clopper_pearson(k, n) == pytest.approx((ci.low, ci.high), abs=1e-9)


def test_rule_thresholds_match_binomial_threshold():
    for n in (10, 50, 100):
        assert stats.RULES["paper_binomial"].threshold(n, 0.05) == binomial_threshold(n, 0.05)
        assert stats.RULES["true_adv_binomial"].threshold(n // 2, 0.01) == binomial_threshold(n // 2, 0.01)


def test_by_architecture_rule_takes_the_lowest_threshold():
    robust = lambda eps, same: 0.5 if same else 0.05
    records = stats.simulate_records(networks=("mlp", "cnn"), eps=(0.1,), key_sizes=(100,),
                                     null_seeds=range(1, 9), transfer=robust, seed=5)
    role = stats.roles(records)
    marked = records.index[(role == stats.MARKED) & (records.network == "mlp")][0]
    nulls = records[(role == stats.NULL) & (records.network == "mlp")]
    pooled = stats.evaluate(records, "true_adv_betabinomial").threshold[marked]
    by_arch = stats.evaluate(records, "true_adv_betabinomial_by_arch").threshold[marked]
    per_arch = {a: stats.BetaBinomial.fit(part.key_errors_true_adv, 50).threshold(0.05)
                for a, part in nulls.groupby("suspect_network")}
    assert by_arch == min(per_arch.values()) == per_arch["cnn"] < per_arch["mlp"]
    assert by_arch <= pooled


def test_same_arch_rule_calibrates_on_the_keys_network_only():
    robust = lambda eps, same: 0.5 if same else 0.05
    records = stats.simulate_records(networks=("mlp", "cnn"), eps=(0.1,), key_sizes=(100,),
                                     null_seeds=range(1, 6), transfer=robust, seed=2)
    role = stats.roles(records)
    out = stats.evaluate(records, "empirical_betabinomial_same_arch")
    mlp_nulls = (role == stats.NULL) & (records.network == "mlp")
    assert (out.n_calibration[mlp_nulls & (records.suspect_network == "mlp")] == 4).all()  # 5 - itself
    assert (out.n_calibration[mlp_nulls & (records.suspect_network == "cnn")] == 5).all()
    same = records[mlp_nulls & (records.suspect_network == "mlp")].key_errors
    marked = records.index[(role == stats.MARKED) & (records.network == "mlp")][0]
    assert out.threshold[marked] == stats.BetaBinomial.fit(same, 100).threshold(0.05)


def test_fpr_by_suspect_and_calibration_curve():
    records = stats.simulate_records(networks=("mlp", "cnn"), eps=(0.1,), key_sizes=(50,), null_seeds=range(1, 6))
    annotated = stats.annotate(records, rules=["empirical_conformal"])
    by_suspect = stats.fpr_by_suspect(annotated)
    assert set(by_suspect.suspect_network) == {"mlp", "cnn"}
    paper = by_suspect[by_suspect.rule == "paper_binomial"]
    assert paper.n_null.sum() == (stats.roles(records) == stats.NULL).sum()
    curve = stats.calibration_curve(records, ["empirical_conformal", stats.DEFAULT_RULE], sizes=(3, 9), repeats=3)
    assert set(curve.n_calibration_models) == {3, 9} and (curve.repeats == 3).all()
    conformal = curve[curve.rule == "empirical_conformal"]
    assert (conformal.tpr == 0).all()  # fewer than 19 calibration models: a rank test cannot reject
    assert curve.fpr.between(0, 1).all()


def test_beta_binomial_nearly_binomial_spread_does_not_overflow():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fitted = stats.BetaBinomial.fit([20, 21, 20, 21, 20, 21, 22], 50)  # variance a hair above binomial?
        assert 0 <= fitted.threshold(0.05) <= 50
        assert 0 < fitted.p_value(10) < 1
