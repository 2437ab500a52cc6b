# Paths, wildcard constraints, the grid, and the helper functions of every rule file (Snakemake's
# convention: rule files hold rules, their functions live here).

from fsw.attack import check_attack
from fsw.sweep_config import check_sweep, stage_overrides
from fsw.grid import KEY_STRATEGIES, NETWORKS as KNOWN_NETWORKS, level_segment, network_options

R = config["results"]
MODELS = config["models"] or f"{R}/train"
SEEDS = config["seeds"]
NETWORKS = config["networks"]
EPS = [level_segment(e) for e in config["eps"]]
KEY_SIZES = config["key_sizes"]
STRATEGIES = config["strategies"]
# The resource `gpu` of each training-like job (train, embed, attack, extract): 1 where the sweep
# says it runs on GPUs (config `gpu`), else 0, so that a CPU run asks no scheduler for any;
# `--resources gpu=N` caps how many hold one at once.
TRAINING_GPUS = int(config["gpu"])
NETWORK_OPTIONS = network_options()
# What the schema cannot check, before any job runs: the Hydra overrides inside the grid (composed
# with each stage's config), and that the populations name known networks and never share a model.
check_sweep(config, NETWORK_OPTIONS)


def population(groups):
    """(split, network, seed) of every model of a population: groups of {split, seeds, networks}."""
    return [(group["split"], network, seed) for group in groups for network in group["networks"] for seed in group["seeds"]]


# The unmarked models a key is checked against, in populations that never mix: the owner's reference
# models (selection: the transfer and conferrable strategies pick key items against them; calibration:
# the key ships their answers, to which the decision is fitted) and the held-out models (false
# positives only).
SELECTION = population(config["reference"]["selection"])
CALIBRATION = population(config["reference"]["calibration"])
HELDOUT = population(config["heldout"])
NULL_POPULATIONS = {"selection": SELECTION, "calibration": CALIBRATION, "heldout": HELDOUT}


def attack_levels(attacks):
    """Attack name -> its levels as path segments; a bad name or level fails before any job runs."""
    for name, levels in attacks.items():
        for level in levels:
            check_attack(name, level)
    return {"none": ["0"], **{name: [level_segment(level) for level in levels] for name, levels in attacks.items()}}


ATTACK_LEVELS = attack_levels(config["attacks"])
# Extraction through the API, verified like an attack: "extract_{surrogate}[_fgsm]" at a query budget.
EXTRACTION = config["extraction"]
EXTRACTION_LEVELS = {
    f"extract_{surrogate}{'_fgsm' if fgsm else ''}": [str(budget) for budget in EXTRACTION["budgets"]]
    for surrogate in EXTRACTION["surrogates"]
    for fgsm in EXTRACTION["fgsm"]
}
EXTRACTION_EPS = [level_segment(eps) for eps in config["extraction"]["eps"]]
REMOTE_EPS = [level_segment(eps) for eps in config["remote"]["eps"]]

# One key: its source network and seed, eps, size and strategy; every stage after keygen is per key.
KEY = "{network}/s{seed}/eps{eps}/l{key_size}/{strategy}"
KEY_DIR = f"{R}/keygen/{KEY}"
MARKED_DIR = f"{R}/embed/{KEY}"
VERIFY_DIR = f"{R}/verify/{KEY}"
ATTACKED_DIR = f"{R}/attack/{KEY}/{{attack}}/{{level}}"
EXTRACTED_DIR = f"{R}/extract/{KEY}/extract_{{surrogate}}{{augment}}/{{budget}}"
LOGS = f"{R}/logs"
BENCHMARKS = f"{R}/benchmarks"
CHECKPOINTS = f"{R}/checkpoints"


wildcard_constraints:
    network="|".join(NETWORK_OPTIONS),
    surrogate="|".join(KNOWN_NETWORKS),
    split="owner|attacker",
    strategy="|".join(KEY_STRATEGIES),
    seed=r"\d+",
    eps=r"\d+(\.\d+)?(e-?\d+)?",
    key_size=r"\d+",
    attack="|".join([*ATTACK_LEVELS, *EXTRACTION_LEVELS]),
    level=r"\d+(\.\d+)?(e-?\d+)?",


def chain_priority(wildcards):
    """Scheduling priority of a job on a key's chain (train, keygen, embed, attack): the key-source
    models and the reference models keygen waits for first, the held-out models last; the CNN's
    (the longest) first within each. Without it a sweep ended with a CNN's embedding and attacks
    running alone on one of two cores (measured: 6.5 minutes)."""
    is_cnn = int(wildcards.network.startswith("cnn"))
    model = (getattr(wildcards, "split", "owner"), wildcards.network, int(wildcards.seed))
    if "split" in wildcards.keys() and model in HELDOUT:
        return is_cnn
    return 2 + is_cnn


def trained(models, name="model.pt"):
    return [f"{MODELS}/{split}/{network}/s{seed}/{name}" for split, network, seed in models]


def source_model(wildcards):
    """The model a key is made from: the owner's network at the key's seed."""
    return trained([("owner", wildcards.network, wildcards.seed)])[0]


def overrides(stage):
    """Hydra overrides for one stage: the data settings every stage shares, then the stage's own."""
    return [text for _, text in stage_overrides(config, stage)]


def grid(pattern, **extra):
    """Every key of the sweep for a path pattern with the key's wildcards."""
    return expand(pattern, network=NETWORKS, seed=SEEDS, eps=EPS, key_size=KEY_SIZES, strategy=STRATEGIES, **extra)




# --- attack.smk: every attack point of the sweep, one job per marked model

ATTACK_POINTS = [(attack, level) for attack, levels in ATTACK_LEVELS.items() for level in levels]
REMOVAL_POINTS = [(attack, level) for attack, level in ATTACK_POINTS if attack != "none"]


def attacked(name, attack, level):
    """The path of one attacked model's file (`model` or `metrics`), key wildcards left open."""
    return f"{ATTACKED_DIR}/{name}".replace("{attack}", attack).replace("{level}", level)


# --- verify.smk: a key against its marked and attacked models and every unmarked one


def unmarked_suspects(wildcards):
    """(population, split, network, seed) of every unmarked model a key is checked against."""
    source = [("source", "owner", wildcards.network, int(wildcards.seed))]
    return source + [(name, *model) for name, models in NULL_POPULATIONS.items() for model in models]


def key_suspects(wildcards):
    """The models one key is checked against, in the order of the verify rule's records: the marked
    model under each attack (attack `none`: the marked model itself), then every unmarked model."""
    marked = [
        rules.embed.output.model.format(**wildcards)
        if attack == "none"
        else attacked("model.pt", attack, level).format(**wildcards)
        for attack, level in ATTACK_POINTS
    ]
    return marked + trained([model for _, *model in unmarked_suspects(wildcards)])


def unmarked_record(population, split, network, seed):
    return f"{VERIFY_DIR}/{population}/{split}/{network}/s{seed}.json"


UNMARKED_RECORDS = [unmarked_record(name, *model) for name, models in NULL_POPULATIONS.items() for model in models]
UNMARKED_PARAMS = [["suspect.kind=unmarked", f"suspect.population={name}"] for name, models in NULL_POPULATIONS.items() for _ in models]


def served_model(wildcards):
    """The model verify_remote serves: the marked model, or the unmarked model its key was made from."""
    if wildcards.kind == "marked":
        return rules.embed.output.model.format(**wildcards)
    return source_model(wildcards)


# --- report.smk: tables and figures of the whole sweep, and the HTML report's folders


def verification_records(wildcards=None):
    """Every key against its marked model at every attack level and every unmarked model; the keys
    of the extraction eps also against each extracted surrogate."""
    per_key = grid(rules.verify.output.records)
    extracted = [
        path
        for attack, budgets in EXTRACTION_LEVELS.items()
        for path in expand(
            f"{VERIFY_DIR}/marked/{{attack}}/{{level}}.json",
            network=NETWORKS, seed=SEEDS, eps=EXTRACTION_EPS, key_size=KEY_SIZES, strategy=STRATEGIES,
            attack=attack, level=budgets,
        )
    ]
    return per_key + extracted


# results/report/{folder} (written by fsw.report, see CATEGORIES there) -> its category in the HTML report
REPORT_FOLDERS = {
    "training": "Training",
    "keys": "Keys",
    "embedding": "Embedding",
    "attacks": "Attacks",
    "extraction": "Extraction",
    "ownership": "Ownership",
    "paper": "Paper vs fsw",
    "sweep": "Sweep",
}


def file_kind(wildcards):
    """figure or table: which pattern of a reported folder a file matched."""
    return "figure" if "figure" in wildcards.keys() else "table"


def reported_table(path, caption, category):
    """One table in the HTML report: its HTML twin, under `category`, subcategory tables."""
    return report(path, caption=caption, category=category, subcategory="tables",
                  labels={"table": Path(path).stem})


def reported_folder(path, caption, category):
    """A folder of tables and figures in the HTML report: each HTML table and PNG figure (not their
    CSV, Markdown and SVG twins) under `category`, subcategory figures or tables, labelled by its name."""
    return report(
        directory(path),
        patterns=["{figure}.png", "{table}.html"],
        caption=caption,
        category=category,
        subcategory=lambda wildcards: file_kind(wildcards) + "s",
        labels=lambda wildcards: {file_kind(wildcards): getattr(wildcards, file_kind(wildcards))},
    )
