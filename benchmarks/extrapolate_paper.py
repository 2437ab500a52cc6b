"""How many jobs, CPU hours and GPU-eligible hours the paper sweep needs, and how fast its DAG runs
on P cores, extrapolated from the `benchmark:` files of a real run of the default sweep.

    python benchmarks/extrapolate_paper.py [--measured results] [--paper config/paper.yaml]

Both job lists come from Snakemake dry runs in empty folders (every job of each sweep, with its
wildcards, threads, resources, inputs and outputs); the paper's dry run is offered a GPU
(--resources gpu=1), so the jobs of GPU-declaring rules say gpu=1. Each paper job's wall time is
predicted from the measured jobs of the default sweep (results/benchmarks/**.tsv, column `s`):

- train, keygen, embed, verify_remote, verify_extracted: mean of the measured jobs of the same
  rule and network (other seeds, eps, key sizes: the same cost);
- attack (one job per marked model, one record per attack point): the measured job's fixed part
  (its time minus its points' `wall_time_s`) plus, per point, the mean of the same network, attack
  and level; a level the default sweep did not run costs, for the training attacks (ftll, ftal,
  rtll, rtal: epochs; overwrite: key size), the network's pruning time (load, attack, save, no
  training) plus the measured training part scaled linearly with the level, and for the others
  (pruning, low rank, quantization) the mean of measured levels;
- extract: per network of the surrogate and augmentation, a straight line through the measured
  budgets; a surrogate network the default sweep did not use scales the budget-dependent part by
  the ratio of the two networks' training times;
- verify: the measured job's fixed part (its time minus its records' `wall_time_s`) plus the
  network's mean time per record times the number of models the paper's job verifies.
Other rules (report, sweep_config, figures: one job each) count as zero and are listed.

The DAG (edges from inputs to the jobs that write them) is then list-scheduled on P cores (a job
holds `threads` cores, longest remaining path first) for the makespan at P, and its critical path
gives the time with unlimited cores. Measured times come from a 2-core machine running two jobs at
once, so they include that contention; GPU times are unknown here (no GPU): the GPU column is the
CPU time of the jobs that would take a GPU. Writes docs/benchmarks/paper_scale.md and .json.
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

from fsw.io import atomic_write, write_json
from fsw.report.sweep import job_costs
from fsw.worker import usage_file

REPO = Path(__file__).resolve().parents[1]
TRAINING_ATTACKS = {"ftll", "ftal", "rtll", "rtal", "overwrite"}  # cost grows with the level
PRUNING = {"prune_global", "prune_layer"}
CORES = [2, 8, 32, 128]


def dry_run(configfile: Path, *args: str) -> list[dict]:
    """Every job of a sweep as a Snakemake dry run in an empty folder prints it."""
    with tempfile.TemporaryDirectory() as workdir:
        command = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", workdir,
                   "--configfile", str(configfile), "-n", "--cores", "64", *args]  # cores: threads uncapped
        done = subprocess.run(command, capture_output=True, text=True, env=os.environ.copy(), check=False)
    if done.returncode != 0:
        sys.exit(done.stderr[-3000:])
    jobs, job = [], None
    for line in (done.stdout + done.stderr).splitlines():
        if match := re.match(r"^(?:local)?rule (\w+):$", line):
            job = {"rule": match.group(1), "input": [], "output": [], "wildcards": {}, "resources": {},
                   "threads": 1, "benchmark": None}
            jobs.append(job)
        elif job and (match := re.match(r"^    (\w+): (.*)$", line)):
            key, value = match.groups()
            if key in ("input", "output"):
                job[key] = value.split(", ")
            elif key in ("wildcards", "resources"):
                job[key] = dict(item.split("=", 1) for item in value.split(", "))
            elif key == "threads":
                job["threads"] = int(value)
            elif key == "benchmark":
                job["benchmark"] = value
    return jobs


def relative(path: str, results: str) -> str:
    """A path inside a sweep's results folder, relative to it."""
    return path[len(results) + 1:] if path.startswith(results + "/") else path


def attack_point(path: str) -> tuple[str, str]:
    """(attack, level) of an attacked model's file: .../{attack}/{level}/metrics.json."""
    parts = Path(path).parts
    return parts[-3], parts[-2]


def sweep_results(configfile: Path) -> str:
    import yaml

    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config.update(yaml.safe_load(configfile.read_text()) or {})
    return config["results"]


class Model:
    """Predicted wall seconds of a paper job from the measured jobs of the default sweep."""

    def __init__(self, measured: list[dict], measured_dir: Path):
        self.by_rule: dict[str, list[dict]] = defaultdict(list)
        for job in measured:
            self.by_rule[job["rule"]].append(job)
        # verify: the fixed part of a job and the time per record, per network of the key
        self.verify_fixed, self.verify_per_record = {}, {}
        fixed, per_record = defaultdict(list), defaultdict(list)
        for job in self.by_rule["verify"]:
            walls = [json.loads((measured_dir / out).read_text())["wall_time_s"] for out in job["outputs_rel"]]
            fixed[job["wildcards"]["network"]].append(job["s"] - sum(walls))
            per_record[job["wildcards"]["network"]].extend(walls)
        self.verify_fixed = {net: statistics.fmean(v) for net, v in fixed.items()}
        self.verify_per_record = {net: statistics.fmean(v) for net, v in per_record.items()}
        # attack: the fixed part of a job per network, and every measured point's time
        self.attack_points: list[dict] = []
        attack_fixed = defaultdict(list)
        for job in self.by_rule["attack"]:
            network = job["wildcards"]["network"]
            walls = 0.0
            for out in job["outputs_rel"]:
                if out.endswith("metrics.json"):
                    attack, level = attack_point(out)
                    wall = json.loads((measured_dir / out).read_text())["wall_time_s"]
                    self.attack_points.append({"network": network, "attack": attack, "level": level, "s": wall})
                    walls += wall
            attack_fixed[network].append(job["s"] - walls)
        self.attack_fixed = {net: statistics.fmean(v) for net, v in attack_fixed.items()}

    def mean(self, rule: str, **match: str) -> float | None:
        times = [job["s"] for job in self.by_rule[rule] if all(job["wildcards"].get(k) == v for k, v in match.items())]
        return statistics.fmean(times) if times else None

    def train_ratio(self, network: str, other: str) -> float:
        return self.mean("train", network=network) / self.mean("train", network=other)

    def predict(self, job: dict) -> float | None:
        rule, w = job["rule"], job["wildcards"]
        if rule in ("train", "keygen", "embed", "verify_remote", "verify_extracted"):
            return self.mean(rule, network=w["network"])
        if rule == "attack":
            if w["network"] not in self.attack_fixed:
                return None
            points = [self.attack_point_time(w["network"], *attack_point(out))
                      for out in job["output"] if out.endswith("metrics.json")]
            return None if None in points else self.attack_fixed[w["network"]] + sum(points)
        if rule == "extract":
            return self.extract(w["surrogate"], w["augment"], float(w["budget"]))
        if rule == "verify":
            models = len(job["input"]) - 1  # every input but the key is a model to verify
            if w["network"] not in self.verify_fixed:
                return None
            return self.verify_fixed[w["network"]] + models * self.verify_per_record[w["network"]]
        return None

    def attack_point_time(self, network: str, attack: str, level: str) -> float | None:
        def mean(**match: str) -> float | None:
            times = [p["s"] for p in self.attack_points if all(p[k] == v for k, v in match.items())]
            return statistics.fmean(times) if times else None

        same = mean(network=network, attack=attack, level=level)
        if same is not None:
            return same
        measured = [p for p in self.attack_points if p["network"] == network and p["attack"] == attack]
        if not measured:
            return None
        if attack not in TRAINING_ATTACKS:
            return statistics.fmean(p["s"] for p in measured)
        pruning = [mean(network=network, attack=a) for a in PRUNING]
        if None in pruning:
            return None
        base = statistics.fmean(pruning)
        return base + statistics.fmean((p["s"] - base) * float(level) / float(p["level"]) for p in measured)

    def extract(self, surrogate: str, augment: str, budget: float) -> float | None:
        measured_surrogates = {j["wildcards"]["surrogate"] for j in self.by_rule["extract"]}
        if not measured_surrogates:
            return None
        source = surrogate if surrogate in measured_surrogates else min(measured_surrogates)
        points = defaultdict(list)
        for j in self.by_rule["extract"]:
            if j["wildcards"]["surrogate"] == source and j["wildcards"]["augment"] == augment:
                points[float(j["wildcards"]["budget"])].append(j["s"])
        if len(points) < 2:
            return None
        xs = sorted(points)
        ys = [statistics.fmean(points[x]) for x in xs]
        slope, intercept = statistics.linear_regression(xs, ys)
        scale = 1.0 if source == surrogate else self.train_ratio(surrogate, source)
        return intercept + slope * budget * scale


def schedule(durations: list[float], threads: list[int], deps: list[set[int]], cores: int) -> float:
    """Makespan of a list schedule on `cores` cores, longest remaining path first."""
    n = len(durations)
    children = [[] for _ in range(n)]
    for job, parents in enumerate(deps):
        for parent in parents:
            children[parent].append(job)
    rank = bottom_levels(durations, children)
    waiting = [len(parents) for parents in deps]
    ready = [(-rank[j], j) for j in range(n) if waiting[j] == 0]
    heapq.heapify(ready)
    running, now, free = [], 0.0, cores
    while ready or running:
        blocked = []
        while ready and free > 0:
            _, job = heapq.heappop(ready)
            need = min(threads[job], cores)
            if need <= free:
                free -= need
                heapq.heappush(running, (now + durations[job], job, need))
            else:
                blocked.append((-rank[job], job))
        for item in blocked:
            heapq.heappush(ready, item)
        now, job, need = heapq.heappop(running)
        free += need
        for child in children[job]:
            waiting[child] -= 1
            if waiting[child] == 0:
                heapq.heappush(ready, (-rank[child], child))
    return now


def bottom_levels(durations: list[float], children: list[list[int]]) -> list[float]:
    """Each job's longest path to the end of the DAG, itself included."""
    order, seen = [], [False] * len(durations)
    for start in range(len(durations)):  # iterative post-order
        stack = [(start, False)]
        while stack:
            job, done = stack.pop()
            if done:
                order.append(job)
            elif not seen[job]:
                seen[job] = True
                stack.append((job, True))
                stack.extend((child, False) for child in children[job] if not seen[child])
    level = [0.0] * len(durations)
    for job in order:  # children before parents
        level[job] = durations[job] + max((level[c] for c in children[job]), default=0.0)
    return level


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--measured-config", type=Path, default=REPO / "config" / "config.yaml",
                        help="the sweep whose benchmark files are read (its `results` folder)")
    parser.add_argument("--measured", type=Path, default=REPO,
                        help="the folder the measured sweep ran in (its results are under it)")
    parser.add_argument("--paper", type=Path, default=REPO / "config" / "paper.yaml")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "benchmarks" / "paper_scale.md")
    args = parser.parse_args()

    measured_results = sweep_results(args.measured_config)
    measured_dir = args.measured / measured_results
    measured = []
    for job in dry_run(args.measured_config):
        if not job["benchmark"]:
            continue
        tsv = measured_dir / relative(job["benchmark"], measured_results)
        if tsv.exists():
            usage = usage_file(measured_dir / "logs" / Path(relative(job["benchmark"], measured_results)).relative_to(
                "benchmarks"))
            job.update(job_costs(tsv, usage))
            job["outputs_rel"] = [relative(out, measured_results) for out in job["output"]]
            measured.append(job)
    if not measured:
        sys.exit(f"no benchmark files under {measured_dir}/benchmarks")
    model = Model(measured, measured_dir)

    paper = dry_run(args.paper, "--resources", "gpu=1")
    paper = [job for job in paper if job["rule"] != "all"]
    producer = {out: i for i, job in enumerate(paper) for out in job["output"]}
    deps = [{producer[path] for path in job["input"] if path in producer} for job in paper]
    predicted = [model.predict(job) for job in paper]
    unmeasured = defaultdict(int)  # rule -> jobs without a prediction (no model or no benchmark for it)
    for job, t in zip(paper, predicted):
        if t is None:
            unmeasured[job["rule"]] += 1
    durations = [t or 0.0 for t in predicted]
    threads = [job["threads"] for job in paper]

    per_rule = defaultdict(lambda: {"jobs": 0, "hours": 0.0, "core_hours": 0.0, "gpu_hours": 0.0,
                                    "longest_min": 0.0, "runtime_min": None})
    for job, t in zip(paper, durations):
        row = per_rule[job["rule"]]
        row["jobs"] += 1
        row["longest_min"] = max(row["longest_min"], t / 60)
        if "runtime" in job["resources"]:
            row["runtime_min"] = max(row["runtime_min"] or 0, int(job["resources"]["runtime"]))
        row["hours"] += t / 3600
        row["core_hours"] += t * job["threads"] / 3600
        if int(job["resources"].get("gpu", 0)) > 0:
            row["gpu_hours"] += t / 3600
    memory = defaultdict(lambda: [0.0, None])  # rule -> measured max RSS (MB), declared mem_mb
    for job in measured:
        memory[job["rule"]][0] = max(memory[job["rule"]][0], job["max_rss_mb"])
        memory[job["rule"]][1] = job["resources"].get("mem_mb")
    totals = {key: sum(row[key] for row in per_rule.values()) for key in ("jobs", "hours", "core_hours", "gpu_hours")}
    makespans = {cores: schedule(durations, threads, deps, cores) / 3600 for cores in CORES}
    children = [[] for _ in paper]
    for job, parents in enumerate(deps):
        for parent in parents:
            children[parent].append(job)
    critical = max(bottom_levels(durations, children)) / 3600
    result = {
        "measured_jobs": len(measured), "paper_jobs": len(paper) + 1, "per_rule": dict(per_rule),
        "totals": totals, "makespan_hours": makespans, "critical_path_hours": critical,
        "not_benchmarked": dict(unmeasured), "memory_mb": {rule: {"max_rss": rss, "declared_mem_mb": mem}
                                                      for rule, (rss, mem) in memory.items()},
    }
    write_json(args.out.with_suffix(".json"), result)
    atomic_write(args.out, lambda tmp: Path(tmp).write_text(markdown(result)))
    print(markdown(result))


def markdown(r: dict) -> str:
    t = r["totals"]
    lines = [
        "# The paper sweep (config/paper.yaml), extrapolated",
        "",
        (f"Written by `benchmarks/extrapolate_paper.py` from {r['measured_jobs']} benchmark files of the "
         f"default sweep. {r['paper_jobs']:,} jobs (with `all`)."),
        "",
        "| rule | jobs | job hours | core hours | GPU-eligible job hours | longest job (min) | declared runtime (min) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for rule, row in sorted(r["per_rule"].items(), key=lambda item: -item[1]["core_hours"]):
        lines.append(f"| {rule} | {row['jobs']:,} | {row['hours']:.1f} | {row['core_hours']:.1f} | {row['gpu_hours']:.1f} "
                     f"| {row['longest_min']:.1f} | {row['runtime_min'] or '-'} |")
    lines += [
        f"| **total** | **{t['jobs']:,}** | **{t['hours']:.1f}** | **{t['core_hours']:.1f}** | **{t['gpu_hours']:.1f}** | | |",
        "",
        "Makespan of the DAG, list-scheduled on P cores (hours): "
        + ", ".join(f"P={cores}: {hours:.1f}" for cores, hours in r["makespan_hours"].items())
        + f"; critical path (unlimited cores): {r['critical_path_hours']:.2f} h.",
        "",
        "Jobs of rules without a model here (counted as zero): "
        + (", ".join(f"{rule} ({n})" for rule, n in sorted(r["not_benchmarked"].items())) or "none") + ".",
        "",
        "Memory: largest measured max RSS per rule against the declared `mem_mb`:",
        "",
        "| rule | max RSS (MB) | mem_mb |",
        "| --- | ---: | ---: |",
    ]
    for rule, mem in sorted(r["memory_mb"].items()):
        lines.append(f"| {rule} | {mem['max_rss']:.0f} | {mem['declared_mem_mb'] or '-'} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
