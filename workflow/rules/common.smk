# Paths, wildcard constraints and the grid shared by all rules.

from fsw.attack import check_attack
from fsw.grid import NETWORKS as KNOWN_NETWORKS, level_segment

R = config["results"]
MODELS = config.get("models", R + "/train")
SEEDS = config["seeds"]
NULL_SEEDS = config["null_seeds"]
NETWORKS = config["networks"]
EPS = [level_segment(e) for e in config["eps"]]
KEY_SIZES = config["key_sizes"]


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
# Every unmarked model a key is checked against: each network at the sweep's seeds (the key's own
# source model among them) and at the null seeds (independently trained, never marked).
SUSPECTS = [(network, seed) for network in NETWORKS for seed in SEEDS + NULL_SEEDS]

KEY_DIR = R + "/keygen/{network}/s{seed}/eps{eps}/l{key_size}"
MARKED_DIR = R + "/embed/{network}/s{seed}/eps{eps}/l{key_size}"
VERIFY_DIR = R + "/verify/{network}/s{seed}/eps{eps}/l{key_size}"
ATTACKED_DIR = R + "/attack/{network}/s{seed}/eps{eps}/l{key_size}/{attack}/{level}"
EXTRACTED_DIR = R + "/extract/{network}/s{seed}/eps{eps}/l{key_size}/extract_{surrogate}{augment}/{budget}"


wildcard_constraints:
    network="|".join(KNOWN_NETWORKS),
    surrogate="|".join(KNOWN_NETWORKS),
    seed=r"\d+",
    suspect_seed=r"\d+",
    eps=r"\d+(\.\d+)?(e-?\d+)?",
    key_size=r"\d+",
    attack="|".join([*ATTACK_LEVELS, *EXTRACTION_LEVELS]),
    level=r"\d+(\.\d+)?(e-?\d+)?",


def chain_priority(wildcards):
    """Scheduling priority of a job on a key's chain (train, keygen, embed, attack): the key-source
    models' chains before the null models, the CNN's (the longest) first. Without it the sweep ended
    with a CNN's embedding and attacks running alone on one of two cores (measured: 6.5 minutes)."""
    is_cnn = int(wildcards.network == "cnn")
    if int(wildcards.seed) not in SEEDS:
        return is_cnn  # a null model: the long ones first, after every chain
    return 2 + is_cnn


def overrides(stage):
    """Hydra overrides for one stage: the data settings every stage shares, then the stage's own."""
    shared = config["overrides"].get("data", []) if stage != "report" else []
    return list(shared) + list(config["overrides"].get(stage, []))


def grid(pattern, **extra):
    """Every point of the sweep for a path pattern with network, seed, eps and key_size wildcards."""
    return expand(pattern, network=NETWORKS, seed=SEEDS, eps=EPS, key_size=KEY_SIZES, **extra)


def gpu_request(wildcards):
    """One GPU per training-like job when the run is offered GPUs (--resources gpu=N), none otherwise."""
    return min(1, workflow.global_resources.get("gpu").value or 0)
