"""The ownership schemes compared across datasets: the schemes and false-claims tables of several
sweeps as one table each, and one figure.

    python tools/compare.py results/compare/mnist results/compare/fashion --out results/compare

Each sweep's report writes <results>/tables/schemes.csv and false_claims.csv (fsw.stats.tables.schemes,
fsw.stats.claims: one row per key, with its dataset); this stacks each into <out>/ (CSV and HTML) and
draws <out>/schemes.png (and .svg) with fsw.figures.ownership.plot_schemes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from fsw.figures.ownership import plot_schemes
from fsw.stats.tables import write_csv_and_html

DEFAULT_RULE = "family_binomial"


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", type=Path, help="results folders of the sweeps to compare")
    parser.add_argument("--out", type=Path, required=True, help="folder of the combined table and figure")
    parser.add_argument("--rule", default=DEFAULT_RULE, help="the decision rule the tables were made with (title only)")
    args = parser.parse_args()
    tables = {name: combined(args.results, name) for name in TABLES}
    args.out.mkdir(parents=True, exist_ok=True)
    written = [path for name, table in tables.items() for path in write_csv_and_html(table, args.out / f"{name}.csv")]
    written += plot_schemes(tables["schemes"], args.out, args.rule)
    print("\n".join(str(path) for path in written))


if __name__ == "__main__":
    main()
