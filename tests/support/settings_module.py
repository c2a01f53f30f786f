"""Settings modules written for the processes a test starts (``process_settings`` in
tests/conftest.py, ``settings=`` of the process fixtures, and bench/chaos.py): the one way
to give a pool or a worker of a test settings of its own. No pytest here: bench/ uses it."""

from __future__ import annotations

import ast
import itertools
import os
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

_module_numbers = itertools.count()


def write_settings_module(
    directory: Path, base: str = "tests.support.pool_settings", settings: Mapping | None = None
) -> dict[str, str]:
    """Write a Django settings module in ``directory``: everything of ``base``, then each of
    ``settings`` as ``NAME = repr(value)`` (literals only: numbers, strings, booleans,
    ``None``, lists and dicts). Returns the environment that makes a process use it."""
    lines = [
        '"""Settings written by a test for the processes it starts."""',
        "",
        f"from {base} import *  # noqa: F403",
        "",
    ]
    for name, value in (settings or {}).items():
        if not name.isupper():
            raise ValueError(f"{name!r}: Django reads upper-case settings only")
        text = repr(value)
        if ast.literal_eval(text) != value:
            raise ValueError(f"{name}={value!r}: only literal values can be written")
        lines.append(f"{name} = {text}")
    directory.mkdir(parents=True, exist_ok=True)
    name = f"test_settings_{os.getpid()}_{next(_module_numbers)}"
    (directory / f"{name}.py").write_text("\n".join(lines) + "\n")
    return {
        "DJANGO_SETTINGS_MODULE": name,
        "PYTHONPATH": os.pathsep.join([str(directory), str(ROOT)]),
    }
