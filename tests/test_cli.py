"""The `pi-inspect` dispatcher: help, unknown commands, and the missing-extra hint."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pi_inspect.edge import cli


def test_help_lists_every_subcommand(capsys):
    assert cli.main([]) == 2
    out = capsys.readouterr().out
    for name in cli.COMMANDS:
        assert name in out


def test_missing_extra_is_one_line_and_exit_2():
    exc = ModuleNotFoundError("No module named 'tensorflow'", name="tensorflow")
    hint = cli.missing_extra(exc, "train")
    assert hint is not None
    assert "pip install 'pi-inspect[train]'" in str(hint)
    assert "\n" not in str(hint)


def test_unknown_third_party_module_is_not_hidden():
    exc = ModuleNotFoundError("No module named 'foo'", name="foo")
    assert cli.missing_extra(exc, "train") is None


def test_subcommand_without_its_extra_says_which_extra_and_exits_2(tmp_path):
    """Hide tensorflow from a child interpreter: `pi-inspect train` must explain, not crash."""
    blocker = tmp_path / "sitecustomize.py"
    blocker.write_text(
        "import sys\n"
        "class _Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('tensorflow', 'keras'):\n"
        "            raise ModuleNotFoundError(f\"No module named '{name}'\", name=name)\n"
        "sys.meta_path.insert(0, _Block())\n"
    )
    env = {"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from pi_inspect.edge.cli import main; sys.exit(main(sys.argv[1:]))",
            "train",
            "--data",
            str(tmp_path),
            "--out",
            str(tmp_path / "run"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    if "needs the" not in proc.stderr:
        pytest.fail(f"unexpected output: rc={proc.returncode} stderr={proc.stderr[-2000:]}")
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0
    assert "pi-inspect[train]" in proc.stderr
