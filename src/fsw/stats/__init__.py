"""Statistics of ownership verification: null distributions and tests (`tests`), decision rules
(`rules`), tables of rates over verification records (`tables`), synthetic records (`simulate`)."""

from fsw.stats.rules import (
    ATTACKED, DEFAULT_RULE, KEY, MARKED, NULL, PAPER_RULE, RULES, SETTING, SOURCE, SUSPECT, Rule, with_roles,
    annotate, decide, evaluate, get_rule, roles, rule_names, suspect_ids, true_adv_items,
)
from fsw.stats.simulate import simulate_records
from fsw.stats.tables import (
    calibration_curve, fpr_by_suspect, null_accuracy, rates, rule_summary, theta_table, to_markdown,
    write_tables,
)
from fsw.stats.tests import (
    CONFIDENCE, DEFAULT_Z, BetaBinomial, Conformal, attained_size, binomial_p_value, binomial_threshold,
    clopper_pearson, conformal_p_value, conformal_threshold, min_null_models,
)

__all__ = [
    "simulate_records",
    "with_roles",
    "ATTACKED",
    "BetaBinomial",
    "CONFIDENCE",
    "Conformal",
    "DEFAULT_RULE",
    "DEFAULT_Z",
    "KEY",
    "MARKED",
    "NULL",
    "PAPER_RULE",
    "RULES",
    "Rule",
    "SETTING",
    "SOURCE",
    "SUSPECT",
    "annotate",
    "attained_size",
    "binomial_p_value",
    "binomial_threshold",
    "calibration_curve",
    "clopper_pearson",
    "conformal_p_value",
    "conformal_threshold",
    "decide",
    "evaluate",
    "fpr_by_suspect",
    "get_rule",
    "min_null_models",
    "null_accuracy",
    "rates",
    "roles",
    "rule_names",
    "rule_summary",
    "suspect_ids",
    "theta_table",
    "to_markdown",
    "true_adv_items",
    "write_tables",
]
