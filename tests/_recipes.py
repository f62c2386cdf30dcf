"""Import a script of recipes/ (not a package) by path, for the tests of the recipes."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType


def load_recipe(name: str) -> ModuleType:
    """recipes/NAME.py as module `recipe_NAME` (registered in sys.modules, so dataclasses and worker
    processes can find it)."""
    path = Path(__file__).resolve().parents[1] / "recipes" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"recipe_{name}", path)
    assert spec is not None and spec.loader is not None, path
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod
