# Paths, wildcard constraints and the grid shared by all rules.

R = config["results"]
SEEDS = config["seeds"]
NETWORKS = config["networks"]
EPS = [f"{e:g}" for e in config["eps"]]
KEY_SIZES = config["key_sizes"]

KEY_DIR = R + "/keys/{network}/s{seed}/eps{eps}/l{key_size}"
MARKED_DIR = R + "/marked/{network}/s{seed}/eps{eps}/l{key_size}"
VERIFY_DIR = R + "/verify/{network}/s{seed}/eps{eps}/l{key_size}"


wildcard_constraints:
    network="|".join(["mlp", "cnn", "irnn"]),
    suspect_network="|".join(["mlp", "cnn", "irnn"]),
    seed=r"\d+",
    suspect_seed=r"\d+",
    eps=r"\d+(\.\d+)?(e-?\d+)?",
    key_size=r"\d+",
    attack=r"[a-z_]+",
    level=r"[0-9.]+",


def overrides(stage):
    """Hydra overrides for one stage: the data settings every stage shares, then the stage's own."""
    shared = config["overrides"].get("data", []) if stage != "report" else []
    return list(shared) + list(config["overrides"].get(stage, []))


def grid(pattern, **extra):
    """Every point of the sweep for a path pattern with network, seed, eps and key_size wildcards."""
    return expand(pattern, network=NETWORKS, seed=SEEDS, eps=EPS, key_size=KEY_SIZES, **extra)
