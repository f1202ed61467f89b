"""A missing camera is one log line when it goes, not OpenCV's warnings on every retry."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_a_missing_camera_writes_one_line_per_outage_not_one_per_retry(tmp_path):
    config = tmp_path / "pi.toml"
    config.write_text(
        f'state_dir = "{tmp_path}"\n[source]\nuri = "/dev/video63"\nreconnect_min_s = 0.1\n'
        "reconnect_max_s = 0.2\n[gpio]\nenabled = false\n[stdout]\nenabled = false\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "OPENCV_LOG_LEVEL"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "pi_inspect.edge.cli", "run", "--config", str(config)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
        env={**env, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    time.sleep(4.0)  # about twenty reopen attempts
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "WARN" not in err.replace("WARNING", "")  # no OpenCV [ WARN ] lines
    offline = [line for line in err.splitlines() if "camera offline" in line]
    assert len(offline) == 1, err
