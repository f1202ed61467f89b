"""The workstation subcommands stay cheap to import: TensorFlow loads only when they run."""

from __future__ import annotations

import subprocess
import sys

import pytest

MODULES = [
    "pi_inspect.train.commands.train",
    "pi_inspect.train.commands.evaluate",
    "pi_inspect.train.commands.gradcam",
    "pi_inspect.train.commands.embed",
    "pi_inspect.train.commands.similar",
]


@pytest.mark.parametrize("module", MODULES)
def test_command_module_imports_without_tensorflow(module):
    code = (
        f"import sys, argparse, {module} as m; m.configure(argparse.ArgumentParser()); "
        "heavy = [n for n in ('tensorflow', 'keras', 'matplotlib') if n in sys.modules]; "
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
