"""fsw.stats: exact thresholds and sizes, intervals, the decisions a key ships with, count rules calibrated
on their own population, detection and ROC tables."""

from fractions import Fraction
from math import comb

import numpy as np
import pandas as pd
import pytest

from fsw.stats import decision, rules, simulate, tables
from fsw.stats import tests as stats
from fsw.stats.tests import binomial_p_value, binomial_threshold


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


# --- the decisions a key ships with --------------------------------------------------------------

def test_poisson_binomial_exact():
    assert decision.poisson_binomial(np.array([0.5, 0.2]))[0] == pytest.approx([0.4, 0.5, 0.1])
    assert decision.poisson_binomial(np.full(4, 0.5))[0] == pytest.approx([1 / 16, 4 / 16, 6 / 16, 4 / 16, 1 / 16])


def test_paper_rule_p_values_are_the_papers():
    null = decision.null_errors(decision.PAPER_RULE, 100)
    assert null.threshold(0.05) == 42 and null.threshold(0.01) == 38
    for errors in (0, 30, 41, 42, 60):
        assert null.p_value(errors) == pytest.approx(float(exact_cdf(errors, 100)), rel=1e-9)


def test_item_independent_p_value_by_hand():
    # 2 reference models, 3 items: item 0 matched by both, item 1 by one, item 2 by none.
    matches = np.array([[1, 1, 0], [1, 0, 0]], dtype=bool)
    mean = 3 / 6
    a, b = 2 * mean + 1e-3, 2 * (1 - mean) + 1e-3
    p = [(2 + a) / (2 + a + b), (1 + a) / (2 + a + b), (0 + a) / (2 + a + b)]
    # P[errors <= 0] = P[all three matched]; P[errors <= 1] adds exactly one miss
    all_matched = p[0] * p[1] * p[2]
    one_miss = sum(np.prod([1 - p[i] if i == j else p[i] for i in range(3)]) for j in range(3))
    null = decision.null_errors("item_independent", 3, matches, ("a", "a"))
    assert null.p_value(0) == pytest.approx(all_matched, rel=1e-12)
    assert null.p_value(1) == pytest.approx(all_matched + one_miss, rel=1e-12)
    assert null.p_value(3) == pytest.approx(1.0)


def test_family_binomial_takes_the_most_lenient_family():
    from scipy.stats import beta, binom

    # family a errs on 16 of 20 answers, family b on 2 of 20: b looks far more like a marked model
    matches = np.zeros((4, 10), dtype=bool)
    matches[0, :2] = matches[1, :2] = True  # a: 4 matches, 16 errors
    matches[2, :9] = matches[3, :9] = True  # b: 18 matches, 2 errors
    null = decision.null_errors("family_binomial", 10, matches, ("a", "a", "b", "b"))
    rate_b = beta.ppf(0.05, 2, 20 - 2 + 1)  # one-sided 95% lower bound of b's error rate
    assert null.p_value(1) == pytest.approx(binom.cdf(1, 10, rate_b), rel=1e-9)
    assert null.threshold(0.05) == int(np.count_nonzero(binom.cdf(np.arange(11), 10, rate_b) < 0.05))


def test_count_betabinomial_is_fitted_to_the_reference_errors():
    matches = np.zeros((6, 50), dtype=bool)
    for row, errors in enumerate([5, 40, 10, 35, 25, 15]):
        matches[row, errors:] = True
    fitted = stats.BetaBinomial.fit([5, 40, 10, 35, 25, 15], 50)
    null = decision.null_errors("count_betabinomial", 50, matches, ("x",) * 6)
    assert null.threshold(0.05) == fitted.threshold(0.05)
    assert null.p_value(12) == pytest.approx(fitted.p_value(12))


def test_rasch_gradient_and_limit():
    from scipy import optimize

    rng = np.random.default_rng(0)
    b, u = rng.normal(-1, 1, 30), rng.normal(0, 1, 12)
    answers = (rng.random((12, 30)) < 1 / (1 + np.exp(-(b[None] + u[:, None])))).astype(float)
    start = rng.normal(size=32) * 0.5
    error = optimize.check_grad(lambda t: decision.rasch_objective(t, answers)[0],
                                lambda t: decision.rasch_objective(t, answers)[1], start)
    assert error < 1e-3
    # without the model effect the mixture is the Poisson-binomial of the item probabilities
    flat = decision.Rasch(b, 1e-9)
    assert flat.matches_pmf() == pytest.approx(decision.poisson_binomial(1 / (1 + np.exp(-b)))[0], abs=1e-12)
    fitted = decision.Rasch.fit(answers)
    assert 0.3 < fitted.tau < 3 and np.corrcoef(fitted.b, b)[0, 1] > 0.5


def test_rasch_respects_robust_models():
    """Reference models that match many items at once (a model effect) widen the null's tail: the
    Rasch rule is stricter than independent items with the same per-item rates."""
    rng = np.random.default_rng(3)
    b, u = rng.normal(-2, 0.5, 100), np.r_[rng.normal(0, 0.2, 10), [3.0, 3.2]]
    answers = rng.random((12, 100)) < 1 / (1 + np.exp(-(b[None] + u[:, None])))
    rasch = decision.null_errors("item_rasch", 100, answers, ("m",) * 12).threshold(0.05)
    independent = decision.null_errors("item_independent", 100, answers, ("m",) * 12).threshold(0.05)
    assert rasch < independent


def test_calibrated_rule_needs_a_calibration_and_names_are_checked():
    with pytest.raises(ValueError, match="calibration"):
        decision.null_errors("item_rasch", 10)
    with pytest.raises(ValueError, match="unknown decision rule"):
        decision.null_errors("nope", 10)


def test_decide_is_errors_below_threshold_and_p_below_z():
    null = decision.null_errors(decision.PAPER_RULE, 20)
    for errors in range(21):
        verdict = null.decide(decision.PAPER_RULE, errors, 0.05)
        assert verdict.marked == (errors < 6) == (verdict.p_value < 0.05)


# --- every rule beside every record; tables ----------------------------------------------------

def simulated(**kwargs):
    return simulate.simulate_records(**kwargs)


def test_count_rules_calibrate_on_the_calibration_population_only():
    records = simulated(networks=("mlp",), eps=(0.1,), key_sizes=(50,), strategies=("transfer",))
    data = rules.with_roles(records)
    calibration = data[data.role == rules.CALIBRATION]
    out = rules.evaluate(records, "true_adv_betabinomial_by_arch", 0.05)
    per_family = [stats.BetaBinomial.fit(part.key_errors_true_adv, 25).threshold(0.05)
                  for _, part in calibration.groupby("suspect_network")]
    assert (out.threshold == min(per_family)).all()
    # changing a held-out record changes no threshold; changing a calibration record may
    moved = records.copy()
    moved.loc[data.index[data.role == rules.HELDOUT][0], "key_errors_true_adv"] = 0
    assert (rules.evaluate(moved, "true_adv_betabinomial_by_arch", 0.05).threshold == out.threshold).all()


def test_annotate_puts_every_rule_beside_every_record():
    records = simulated(networks=("mlp",), eps=(0.1,), key_sizes=(20,))
    annotated = rules.annotate(records, "family_binomial", 0.05)
    for name in rules.rule_names():
        for column in ("marked", "p_value", "threshold"):
            assert f"{column}_{name}" in annotated
    assert (annotated.marked_default == annotated.marked_family_binomial).all()
    assert (annotated.marked_paper_binomial == records.paper_binomial.map(lambda d: d["marked"])).all()
    assert len(annotated) == len(records)


def test_useful_attacked_copies():
    records = simulated(networks=("mlp",), eps=(0.1,), key_sizes=(20,), strategies=("paper",))
    ruined = records.population == "attacked"
    records.loc[ruined, "test_acc"] = 0.90
    assert not rules.with_roles(records).useful[ruined].any()
    records.loc[ruined, "test_acc"] = 0.98 - 0.035
    assert rules.with_roles(records).useful[ruined].all()


def test_detection_counts_and_intervals():
    records = simulated(networks=("mlp",), eps=(0.025,), key_sizes=(100,), strategies=("paper", "transfer"))
    annotated = rules.annotate(records, "family_binomial", 0.05)
    table = tables.detection(annotated, "family_binomial", "transfer")
    assert list(table.columns) == tables.DETECTION_COLUMNS
    row = table[(table.rule == "paper_binomial") & (table.population == "heldout_null")
                & (table.strategy == "paper")].iloc[0]
    heldout = annotated[(annotated.role == "heldout") & (annotated.strategy == "paper")]
    expected = int((heldout.key_errors < 42).sum())
    assert (row.n, row.detected) == (len(heldout), expected)
    assert (row.ci_low, row.ci_high) == pytest.approx(stats.clopper_pearson(expected, len(heldout)))
    recommended = table[table.recommended]
    assert set(recommended.rule) == {"family_binomial"} and set(recommended.strategy) == {"transfer"}
    assert set(table.population) == {"marked", "attacked", "calibration_null", "heldout_null"}


def test_roc_points_exact():
    auc, tpr01, tpr05 = tables.roc_points(negatives=[0, 1, 2, 3], positives=[2, 4, 5])
    assert auc == pytest.approx((2 + 0.5 + 4 + 4) / 12)  # 2 beats 0 and 1, ties 2
    assert tpr01 == tpr05 == pytest.approx(2 / 3)  # no negative may exceed: above 3
    _, _, tpr05 = tables.roc_points(negatives=np.arange(20), positives=[18.5, 17.5, 30])
    assert tpr05 == pytest.approx(2 / 3)  # one of 20 negatives may exceed: above 18


def test_schemes_table_per_key(tmp_path):
    records = simulated(networks=("mlp",), eps=(0.1,), key_sizes=(50,), strategies=("paper", "transfer"))
    annotated = rules.annotate(records, "family_binomial", 0.05)
    table = tables.schemes(annotated, "family_binomial")
    assert list(table.strategy) == ["paper", "transfer"]
    for _, row in table.iterrows():
        key = annotated[annotated.strategy == row.strategy]
        heldout, marked = key[key.role == "heldout"], key[key.role == "marked"]
        source = key[key.role == "source"]
        assert row.n_heldout == len(heldout) > 0
        assert row.heldout_fpr == pytest.approx(heldout.marked_family_binomial.astype(bool).mean())
        assert row.accuracy_cost == pytest.approx(source.test_acc.mean() - marked.test_acc.mean())
        attacked = key[(key.role == "attacked") & key.useful]
        expected = tables.roc_points(-heldout.p_value_family_binomial, -attacked.p_value_family_binomial)
        assert (row.attacked_auc, row.attacked_tpr_at_fpr_01, row.attacked_tpr_at_fpr_05) == pytest.approx(expected)
        assert row.attacked_n == len(attacked)
    # no extracted copies in these records: their columns are empty, not zero
    assert table.extracted_n.eq(0).all() and table.extracted_auc.isna().all()


def test_write_tables(tmp_path):
    records = simulated(networks=("mlp",), eps=(0.1,), key_sizes=(20,))
    paths, written = tables.write_tables(records, tmp_path, 0.05, "family_binomial", "transfer")
    assert {p.name for p in paths} >= {"decisions.csv", "detection.csv", "roc.csv", "detection.md", "detection.html",
                                       "roc.html", "fpr_by_family.csv", "null_accuracy.csv",
                                       "schemes.csv", "schemes.html", "false_claims.csv"}
    assert all(p.stat().st_size > 0 for p in paths)
    roc = pd.read_csv(tmp_path / "roc.csv")
    assert list(roc.columns) == tables.ROC_COLUMNS and roc.auc.between(0, 1).all()
    page = (tmp_path / "roc.html").read_text()
    assert page.count("<tr") == len(roc) + 1 and all(f"<th>{column}</th>" in page for column in roc.columns)


def test_html_table_is_a_self_contained_page_for_readers():
    table = pd.DataFrame({"network": ["<mlp>"], "key_hash": ["0123456789abcdef"], "rate": [0.123456], "n": [7],
                          "marked": [True], "missing": [np.nan]})
    page = tables.to_html(table, "detection", note="decided by `paper_binomial`")
    assert page.startswith("<!DOCTYPE html>") and "<title>detection</title>" in page
    assert "<script" not in page and "<link" not in page  # nothing to fetch inside the report's iframe
    assert "&lt;mlp&gt;" in page and "<td>0123456789ab</td>" in page and "<td>0.123</td>" in page
    assert "<td></td>" in page and "<code>paper_binomial</code>" in page and "1 rows" in page
    # numbers right-aligned: rate, n and the empty float column, not the text or the boolean
    assert all(f"td:nth-child({i})" in page for i in (3, 4, 6))
    assert not any(f"td:nth-child({i})" in page for i in (1, 2, 5))
    claims = tables.to_html(pd.DataFrame({"claim": ["a sentence long enough to be worth wrapping in a cell"],
                                          "verdict": ["agrees"]}), "paper_vs_fsw")
    assert "td:nth-child(1) { white-space: normal" in claims and "td:nth-child(2) { white-space" not in claims


@pytest.mark.parametrize("k,n", [(0, 7), (1, 7), (3, 20), (19, 20), (20, 20), (412, 1000)])
def test_clopper_pearson_equals_scipy_exact(k, n):
    from scipy.stats import binomtest

    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
    assert stats.clopper_pearson(k, n) == pytest.approx((ci.low, ci.high), abs=1e-9)


def test_beta_binomial_nearly_binomial_spread_does_not_overflow():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fitted = stats.BetaBinomial.fit([20, 21, 20, 21, 20, 21, 22], 50)  # variance a hair above binomial?
        assert 0 <= fitted.threshold(0.05) <= 50
        assert 0 < fitted.p_value(10) < 1


def test_true_adversary_counts_come_from_the_record_where_it_has_them():
    records = pd.DataFrame({"key_size": [100, 100, 20], "key_true_adversaries": [37, None, 10]})
    assert rules.true_adv_items(records).tolist() == [37, 50, 10]
    assert rules.true_adv_items(records.drop(columns="key_true_adversaries")).tolist() == [50, 50, 10]
    counted = [rule for rule in rules.RULES.values() if rule.statistic != "key_errors"]
    assert counted and counted[0].items(records).tolist() == [37, 50, 10]


def test_false_claims_forged_from_the_targets_answers():
    from fsw.stats import claims

    l = 12
    calibration = [np.zeros(l, int)] * 2 + [np.ones(l, int)] * 2  # family a answers 0, family b answers 1
    shared = np.zeros(l, int)  # what family a answers: calibration models agree with it
    alien = np.full(l, 7)  # what no calibration model answers
    base = {"network": "mlp", "eps": 0.1, "key_size": l, "strategy": "paper"}
    rows = [{**base, "role": "calibration", "answers": list(a), "suspect_network": f, "marked_family_binomial": False}
            for a, f in zip(calibration, ["a", "a", "b", "b"])]
    rows += [{**base, "role": "heldout", "answers": list(shared), "suspect_network": "x", "marked_family_binomial": True},
             {**base, "role": "heldout", "answers": list(alien), "suspect_network": "y", "marked_family_binomial": False}]
    table = claims.false_claims(pd.DataFrame(rows), "family_binomial", 0.05)
    row = table.iloc[0]
    assert (row.n_heldout, row.honest_claims) == (2, 1)  # the key's own verdicts, passed through
    # forged on `shared`: family a matches every item, so 0 errors is what an unmarked model makes
    assert not claims.forged_marked(shared, np.array(calibration), ("a", "a", "b", "b"), "family_binomial", 0.05)
    assert claims.forged_marked(alien, np.array(calibration), ("a", "a", "b", "b"), "family_binomial", 0.05)
    assert row.forged_claims == 1 and row.forged_rate == 0.5
    assert (row.forged_ci_low, row.forged_ci_high) == pytest.approx(stats.clopper_pearson(1, 2))
