"""Quiet by default: library chatter (gpiozero fallbacks, TensorFlow's C++ logs) only with -v."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from daemon_helpers import OK_BGR, write_video

ROOT = Path(__file__).resolve().parents[1]


def _run_daemon_on_a_file(tmp_path: Path, *flags: str) -> subprocess.CompletedProcess:
    video = write_video(tmp_path / "clip.avi", [OK_BGR] * 5)
    config = tmp_path / "config.toml"
    config.write_text(
        f'[source]\nkind = "file"\nuri = "{video}"\n\n[snapshots]\nenabled = false\n'
    )  # gpio left to gpiozero's own choice: on a workstation it falls back, pin by pin
    return subprocess.run(
        [sys.executable, "-m", "pi_inspect.edge.cli", *flags, "run", "--config", str(config)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )


def test_run_without_gpio_hardware_shows_the_fault_without_fallback_warnings(tmp_path):
    proc = _run_daemon_on_a_file(tmp_path)
    assert "Falling back" not in proc.stderr and "PinFactoryFallback" not in proc.stderr
    if "GPIO is not available" not in proc.stderr:
        pytest.skip("this machine has GPIO: gpiozero does not fall back")
    assert proc.stderr.count("GPIO is not available") == 1  # the fault, said once


def test_verbose_shows_the_library_warnings_again(tmp_path):
    proc = _run_daemon_on_a_file(tmp_path, "-v")
    if "GPIO is not available" not in proc.stderr:
        pytest.skip("this machine has GPIO: gpiozero does not fall back")
    assert "Falling back from" in proc.stderr


def test_tensorflow_commands_start_quietly():
    code = (
        "from pi_inspect.edge.cli import quiet; quiet(); from pi_inspect.train.quiet import import_tensorflow; "
        "import_tensorflow(); import tensorflow as tf; tf.reduce_sum(tf.ones((2, 2))).numpy()"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    for chatter in ("cuInit", "oneDNN", "absl::InitializeLog", "cuda"):
        assert chatter not in proc.stderr, proc.stderr
