# Paths, wildcard constraints and the grid shared by all rules.

from fsw.attack import check_attack
from fsw.validate import check_sweep
from fsw.grid import KEY_STRATEGIES, NETWORKS as KNOWN_NETWORKS, level_segment, network_options

R = config["results"]
MODELS = config.get("models", R + "/train")
SEEDS = config["seeds"]
NETWORKS = config["networks"]
EPS = [level_segment(e) for e in config["eps"]]
KEY_SIZES = config["key_sizes"]
STRATEGIES = config["strategies"]
NETWORK_OPTIONS = network_options()
# What the schema cannot check, before any job runs: the Hydra overrides inside the grid, and that
# the populations name known networks and never share a model.
check_sweep(config, NETWORK_OPTIONS)


def population(groups):
    """(split, network, seed) of every model of a population: groups of {split, seeds, networks}."""
    return [(group["split"], network, seed) for group in groups for network in group["networks"] for seed in group["seeds"]]


# The unmarked models a key is checked against, in populations that never mix: the owner's reference
# models (selection: the transfer strategy picks key items against them; calibration: the key ships
# their answers, to which the decision is fitted) and the held-out models (false positives only).
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
KEY_DIR = R + "/keygen/" + KEY
MARKED_DIR = R + "/embed/" + KEY
VERIFY_DIR = R + "/verify/" + KEY
ATTACKED_DIR = R + "/attack/" + KEY + "/{attack}/{level}"
EXTRACTED_DIR = R + "/extract/" + KEY + "/extract_{surrogate}{augment}/{budget}"


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


def source_model(wildcards):
    """The model a key is made from: the owner's network at the key's seed."""
    return MODELS + f"/owner/{wildcards.network}/s{wildcards.seed}/model.pt"


def trained(models, name="model.pt"):
    return [MODELS + f"/{split}/{network}/s{seed}/{name}" for split, network, seed in models]


def overrides(stage):
    """Hydra overrides for one stage: the data settings every stage shares, then the stage's own."""
    shared = config["overrides"].get("data", []) if stage != "report" else []
    return list(shared) + list(config["overrides"].get(stage, []))


def grid(pattern, **extra):
    """Every key of the sweep for a path pattern with the key's wildcards."""
    return expand(pattern, network=NETWORKS, seed=SEEDS, eps=EPS, key_size=KEY_SIZES, strategy=STRATEGIES, **extra)


def gpu_request(wildcards):
    """One GPU per training-like job when the run is offered GPUs (--resources gpu=N), none otherwise."""
    return min(1, workflow.global_resources.get("gpu").value or 0)
