"""Nothing in the repository deserialises in a way that can run code.

An AST scan of every Python file under src/, workflow/, tools/ and benchmarks/: each name is
resolved through the file's imports (`import pickle as p`, `from torch import load as fetch`), so an
alias is caught like the name itself. Snakemake files are not Python; their text must not name a
loader at all. The scanner is first shown to catch each pattern in sample sources.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from tests.conftest import REPO

SCANNED = ("src", "workflow", "tools", "benchmarks")

# Callables that run code from what they read, whatever their arguments: referring to one at all
# (calling it, or passing it on) is an offence.
UNSAFE = {
    **{f"{module}.{name}": "unpickles" for module in ("pickle", "_pickle", "cPickle", "dill", "cloudpickle")
       for name in ("load", "loads", "Unpickler")},
    "joblib.load": "unpickles",
    "pandas.read_pickle": "unpickles",
    "numpy.load": None,  # safe unless allow_pickle is set: checked at the call
    "shelve.open": "unpickles",
    "marshal.load": "loads code objects",
    "marshal.loads": "loads code objects",
    "torch.jit.load": "loads TorchScript, which runs code",
    "torch.package.PackageImporter": "imports pickled code",
    "torch.serialization.add_safe_globals": "widens torch's unpickling allow-list",
    "torch.serialization.safe_globals": "widens torch's unpickling allow-list",
    "torch.load": None,  # safe with weights_only=True: checked at the call
    "torch.serialization.load": None,
    "yaml.unsafe_load": "constructs arbitrary Python objects",
    "yaml.load": None,  # safe with a safe Loader: checked at the call
}
SAFE_YAML_LOADERS = ("SafeLoader", "CSafeLoader", "BaseLoader", "CBaseLoader")
SNAKEMAKE_FORBIDDEN = re.compile(r"\b(pickle|torch\.load|np\.load|numpy\.load|jit\.load|joblib|dill|marshal|"
                                 r"shelve|weights_only|allow_pickle|read_pickle|unsafe_load)\b")


def imported_names(tree: ast.AST) -> dict[str, str]:
    """Every name the module binds by import, mapped to the dotted path it stands for."""
    names = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    names[alias.asname] = alias.name
                else:
                    top = alias.name.split(".")[0]
                    names[top] = top
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                names[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return names


def dotted(node: ast.AST, names: dict[str, str]) -> str | None:
    """The dotted path an expression stands for (`p.loads` -> pickle.loads), through imports and
    `getattr(module, "name")`; None for anything else."""
    if isinstance(node, ast.Name):
        return names.get(node.id, node.id)
    if isinstance(node, ast.Attribute):
        base = dotted(node.value, names)
        return f"{base}.{node.attr}" if base else None
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "getattr"
            and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str)):
        base = dotted(node.args[0], names)
        return f"{base}.{node.args[1].value}" if base else None
    return None


def canonical(path: str) -> str:
    """numpy's name for a path through `np`, the name it is usually imported as."""
    return re.sub(r"^np\.", "numpy.", path)


def constant(node: ast.AST | None, value) -> bool:
    return isinstance(node, ast.Constant) and node.value is value


def call_problem(call: ast.Call, target: str) -> str | None:
    """Why a call of a conditionally safe loader is unsafe, or None."""
    keywords = {k.arg: k.value for k in call.keywords}
    if None in keywords:  # **kwargs: the flags cannot be read
        return f"{target} with **kwargs, whose safety flags cannot be checked"
    if target in ("torch.load", "torch.serialization.load") and not constant(keywords.get("weights_only"), True):
        return f"{target} without weights_only=True"
    if target == "numpy.load" and "allow_pickle" in keywords and not constant(keywords["allow_pickle"], False):
        return "numpy.load with allow_pickle"
    if target == "yaml.load":
        loader = keywords.get("Loader", call.args[1] if len(call.args) > 1 else None)
        if not (isinstance(loader, (ast.Name, ast.Attribute)) and ast.unparse(loader).split(".")[-1] in SAFE_YAML_LOADERS):
            return "yaml.load without a safe Loader"
    return None


def unsafe_loads(source: str, filename: str = "<sample>") -> list[str]:
    """Every deserialisation in `source` that could run code, as 'file:line: what'."""
    tree = ast.parse(source, filename=filename)
    names = imported_names(tree)
    found = []
    called = {id(node.func) for node in ast.walk(tree) if isinstance(node, ast.Call)}
    for node in ast.walk(tree):
        where = f"{filename}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.ImportFrom) and any(alias.name == "*" for alias in node.names) \
                and any(key.startswith(f"{node.module}.") for key in UNSAFE):
            found.append(f"{where}: from {node.module} import *")
        if isinstance(node, ast.Call):
            flag = next((k for k in node.keywords if k.arg in ("weights_only", "allow_pickle")), None)
            if flag is not None and not constant(flag.value, flag.arg == "weights_only"):
                found.append(f"{where}: {flag.arg}={ast.unparse(flag.value)}")
            target = canonical(dotted(node.func, names) or "")
            if UNSAFE.get(target, "") is None and (problem := call_problem(node, target)):
                found.append(f"{where}: {problem}")
        if isinstance(node, (ast.Name, ast.Attribute, ast.Call)):
            target = canonical(dotted(node, names) or "")
            if UNSAFE.get(target):
                found.append(f"{where}: {target} {UNSAFE[target]}")
            elif target in ("torch.load", "torch.serialization.load") and id(node) not in called \
                    and not isinstance(getattr(node, "ctx", None), ast.Store):
                found.append(f"{where}: {target} passed on, so its weights_only cannot be checked")
    return sorted(set(found))


CAUGHT = {
    "torch.load without weights_only": "import torch\ntorch.load(path)\n",
    "torch.load(weights_only=False)": "import torch\ntorch.load(path, weights_only=False)\n",
    "weights_only from a variable": "import torch\ntorch.load(path, weights_only=trusted)\n",
    "torch.load(**options)": "import torch\ntorch.load(path, weights_only=True, **options)\n",
    "import torch as t": "import torch as t\nt.load(path)\n",
    "from torch import load as fetch": "from torch import load as fetch\nfetch(path)\n",
    "torch.serialization.load": "import torch.serialization\ntorch.serialization.load(path)\n",
    "torch.load passed on": "import functools, torch\nread = functools.partial(torch.load, map_location='cpu')\n",
    "getattr(torch, 'load')": "import torch\ngetattr(torch, 'load')(path)\n",
    "weights_only=False elsewhere": "Model.load_from_checkpoint(path, weights_only=False)\n",
    "pickle.load": "import pickle\npickle.load(handle)\n",
    "pickle.loads": "import pickle\npickle.loads(data)\n",
    "import pickle as p": "import pickle as p\np.loads(data)\n",
    "from pickle import loads": "from pickle import loads\nloads(data)\n",
    "from pickle import *": "from pickle import *\n",
    "pickle.Unpickler": "import pickle\npickle.Unpickler(handle).load()\n",
    "pickle.loads passed on": "import pickle\ndecode = pickle.loads\n",
    "getattr(pickle, 'loads')": "import pickle\ngetattr(pickle, 'loads')(data)\n",
    "np.load(allow_pickle=True)": "import numpy as np\nnp.load(path, allow_pickle=True)\n",
    "from numpy import load as read": "from numpy import load as read\nread(path, allow_pickle=True)\n",
    "dill.loads": "import dill\ndill.loads(data)\n",
    "joblib.load": "import joblib\njoblib.load(path)\n",
    "pandas.read_pickle": "import pandas as pd\npd.read_pickle(path)\n",
    "torch.jit.load": "import torch\ntorch.jit.load(path)\n",
    "add_safe_globals": "from torch.serialization import add_safe_globals\nadd_safe_globals([Thing])\n",
    "marshal.loads": "import marshal\nmarshal.loads(data)\n",
    "yaml.load(Loader=yaml.Loader)": "import yaml\nyaml.load(text, Loader=yaml.Loader)\n",
    "yaml.unsafe_load": "import yaml\nyaml.unsafe_load(text)\n",
}

SAFE = {
    "torch.load(weights_only=True)": "import torch\ntorch.load(path, map_location='cpu', weights_only=True)\n",
    "np.load": "import numpy as np\nnp.load(path)\n",
    "np.load(allow_pickle=False)": "import numpy as np\nnp.load(path, allow_pickle=False)\n",
    "pickle.dumps": "import pickle\npickle.dumps(value)\n",
    "pickle.UnpicklingError": "import pickle\ntry:\n    pass\nexcept pickle.UnpicklingError:\n    pass\n",
    "json.loads": "import json\njson.loads(text)\n",
    "a function of its own called load": "def load(path):\n    return path\nload('x')\n",
    "yaml.safe_load": "import yaml\nyaml.safe_load(text)\n",
    "yaml.load(Loader=yaml.SafeLoader)": "import yaml\nyaml.load(text, Loader=yaml.SafeLoader)\n",
}


@pytest.mark.parametrize("source", CAUGHT.values(), ids=CAUGHT.keys())
def test_the_scan_catches(source):
    assert unsafe_loads(source), source


@pytest.mark.parametrize("source", SAFE.values(), ids=SAFE.keys())
def test_the_scan_lets_through(source):
    assert unsafe_loads(source) == []


def scanned_files() -> list[Path]:
    return sorted(path for folder in SCANNED for path in (REPO / folder).rglob("*") if path.is_file()
                  and (path.suffix in (".py", ".smk") or path.name == "Snakefile")) + [REPO / "Snakefile"]


def test_no_unsafe_deserialisation_in_the_repository():
    """Every torch.load passes weights_only=True, and nothing unpickles with pickle/dill/joblib, loads
    TorchScript, widens torch's allow-list, or lets numpy or YAML build arbitrary objects."""
    offences = []
    for path in scanned_files():
        name = str(path.relative_to(REPO))
        if path.suffix == ".py":
            offences += unsafe_loads(path.read_text(), name)
        else:
            offences += [f"{name}:{number}: {match.group(0)} (load in a script, where it is checked)"
                         for number, line in enumerate(path.read_text().splitlines(), 1)
                         for match in SNAKEMAKE_FORBIDDEN.finditer(line)]
    assert len(scanned_files()) > 50 and not offences, "\n".join(offences)
