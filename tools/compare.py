"""The ownership schemes compared across datasets: the schemes and false-claims tables of several
sweeps as one table each, and one figure.

    python -m tools.compare results/compare/mnist results/compare/fashion --out results/compare [--readme README.md]

Each sweep's report writes <results>/tables/schemes.csv and false_claims.csv (fsw.stats.tables.schemes,
fsw.stats.claims: one row per key, with its dataset); this stacks each into <out>/ (CSV and HTML) and
draws <out>/schemes.png (and .svg) with fsw.figures.ownership.plot_schemes. With --readme, the
README's comparison section (between its compare markers: the figure) and docs/compare.md (the
tables) are written from the same tables, and the figure copied to docs/compare/.
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

import pandas as pd

from fsw.figures.ownership import plot_schemes
from fsw.io import atomic_write
from fsw.stats.tables import write_csv_and_html
from tools.readme import update_readme

DEFAULT_RULE = "family_binomial"
START, END = "<!-- compare:start -->", "<!-- compare:end -->"
# The README's columns: per key, its cost, TPR at held-out FPR 1% per positive population, and the
# share of held-out models the calibrated decision calls marked, an honest claimant could claim,
# and a forging one could.
SUMMARY = {"dataset": "dataset", "network": "network", "strategy": "scheme", "queries": "queries",
           "accuracy_cost": "accuracy cost", "marked_tpr_at_fpr_01": "marked", "attacked_tpr_at_fpr_01": "attacked",
           "extracted_tpr_at_fpr_01": "extracted", "heldout_fpr": "held-out FPR", "forged_rate": "forged claims"}


TABLES = ("schemes", "false_claims")


def combined(results: list[Path], name: str = "schemes") -> pd.DataFrame:
    tables = []
    for folder in results:
        path = folder / "tables" / f"{name}.csv"
        if not path.exists():
            raise SystemExit(f"{path} is missing: run the sweep of {folder} (with its report) first")
        tables.append(pd.read_csv(path))
    table = pd.concat(tables, ignore_index=True)
    if "dataset" not in table or table.dataset.isna().any():
        raise SystemExit(f"a {name} table has no dataset column: its records predate the dataset field; rerun its report")
    order = [column for column in ("dataset", "network", "strategy", "eps") if column in table]
    return table.sort_values(order).reset_index(drop=True)


def summary(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    keys = ["dataset", "network", "eps", "key_size", "strategy"]
    claims = tables["false_claims"][[*keys, "forged_rate"]]
    return tables["schemes"].merge(claims, on=keys, how="left")[list(SUMMARY)].rename(columns=SUMMARY)


def per_scheme(rows: pd.DataFrame) -> pd.DataFrame:
    """The summary's rows averaged over the networks, per dataset and scheme."""
    return rows.drop(columns="network").groupby(["dataset", "scheme"], sort=True).mean().reset_index()


def legend(count: int, what: str) -> str:
    return (f"Written by `make compare` from {count} {what}. Marked, attacked, extracted: the true-positive rate at "
            "a held-out false-positive rate of 1% (an ROC of the "
            f"`{DEFAULT_RULE}` p-value against the held-out models); held-out FPR: the share of held-out models "
            "the calibrated decision calls marked; forged claims: the share a claimant who labels the scheme's "
            "items with the model's own answers could claim without a commitment.")


def readme_section(rows: pd.DataFrame, figure: Path, document: Path, readme: Path) -> str:
    def link(path: Path) -> str:
        return Path(os.path.relpath(path, readme.parent)).as_posix()

    return "\n".join([
        START,
        (f"Written by `make compare` from {len(rows)} keys (one per dataset, network and scheme): the TPR at a "
         f"held-out FPR of 1% per scheme, network and dataset below; every number per scheme and per key in "
         f"[{link(document)}]({link(document)})."),
        "",
        f"![schemes compared]({link(figure)})",
        END,
    ])


def compare_document(rows: pd.DataFrame) -> str:
    return "\n".join(["# Ownership schemes compared", "", legend(len(rows), "keys") +
                      " Every column: `results/compare/schemes.csv` and `false_claims.csv`.", "",
                      "## Per scheme and dataset, averaged over the networks", "",
                      per_scheme(rows).to_markdown(index=False, floatfmt=".3g"), "",
                      "## Per key", "", rows.to_markdown(index=False, floatfmt=".3g"), ""])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", type=Path, help="results folders of the sweeps to compare")
    parser.add_argument("--out", type=Path, required=True, help="folder of the combined table and figure")
    parser.add_argument("--readme", type=Path, help="write the README's comparison section too")
    args = parser.parse_args()
    tables = {name: combined(args.results, name) for name in TABLES}
    args.out.mkdir(parents=True, exist_ok=True)
    written = [path for name, table in tables.items() for path in write_csv_and_html(table, args.out / f"{name}.csv")]
    written += plot_schemes(tables["schemes"], args.out, DEFAULT_RULE)
    if args.readme:
        rows = summary(tables)
        figure = args.readme.parent / "docs" / "compare" / "schemes.png"
        document = args.readme.parent / "docs" / "compare.md"
        figure.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(args.out / "schemes.png", figure)
        atomic_write(document, lambda tmp: Path(tmp).write_text(compare_document(rows)))
        update_readme(args.readme, readme_section(rows, figure, document, args.readme), START, END)
        written += [figure, document, args.readme]
    print("\n".join(str(path) for path in written))


if __name__ == "__main__":
    main()
