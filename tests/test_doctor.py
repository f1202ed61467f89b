"""pi-inspect doctor: every check has an OK and a FAIL path, each printed as one line."""

from __future__ import annotations

import shutil
import subprocess
import threading

import numpy as np
import pytest
from gpiozero.pins.mock import MockFactory

from pi_inspect.edge.cli import main
from pi_inspect.edge.doctor import (
    Check,
    check_broker,
    check_bundle,
    check_camera,
    check_disk,
    check_gpio,
    check_numpy,
    check_python,
    check_runtime,
    check_service,
)
from pi_inspect.edge.sources import Frame
from tests.test_deploy import make_bundle


def test_lines_are_ok_or_fail_with_a_fix_hint():
    assert Check("disk", True, "9 GB free").line() == "OK   disk: 9 GB free"
    assert Check("disk", False, "1 MB free", "free space").line() == (
        "FAIL disk: 1 MB free -- fix: free space"
    )


def test_python_and_runtime_versions():
    assert check_python((3, 11)).ok and check_python((3, 13)).ok
    assert not check_python((3, 9)).ok
    assert check_runtime("2.3.0", None).detail == "ai-edge-litert 2.3.0"
    missing = check_runtime(None, None)
    assert not missing.ok and "pi-inspect[edge]" in missing.fix


def test_numpy_2_with_tflite_runtime_is_a_mismatch():
    bad = check_numpy("2.1.0", "2.14.0")
    assert not bad.ok and "numpy<2" in bad.fix
    assert check_numpy("1.26.4", "2.14.0").ok
    assert check_numpy("2.4.0", None).ok  # LiteRT is fine with numpy 2


class OneFrameSource:
    name = "test camera"
    live = True

    def __init__(self, fail: bool = False, block: threading.Event | None = None) -> None:
        self.fail, self.block, self.closed = fail, block, False

    def open(self) -> None:
        if self.fail:
            raise OSError("cannot open camera 0")

    def read(self) -> Frame:
        if self.block is not None:
            self.block.wait()
        return Frame(0, 0.0, np.zeros((48, 64, 3), np.uint8))

    def close(self) -> None:
        self.closed = True


def test_camera_ok_reports_frame_size_and_closes_the_source():
    source = OneFrameSource()
    result = check_camera(lambda: source)
    assert result.ok and result.detail == "test camera: 64x48 frame"
    assert source.closed


def test_camera_that_cannot_open_or_hangs_fails():
    failed = check_camera(lambda: OneFrameSource(fail=True))
    assert not failed.ok and "cannot open camera 0" in failed.detail and "video" in failed.fix
    gate = threading.Event()
    hung = check_camera(lambda: OneFrameSource(block=gate), timeout_s=0.2)
    gate.set()
    assert not hung.ok and "no frame" in hung.detail


def test_gpio_pin_factory_ok_with_mock_and_fail_when_unavailable():
    assert check_gpio(True, MockFactory, "mock").detail == "pin factory MockFactory"

    def no_lgpio():
        raise ModuleNotFoundError("No module named 'lgpio'")

    failed = check_gpio(True, no_lgpio, "lgpio")
    assert not failed.ok and "lgpio" in failed.detail and "group gpio" in failed.fix
    assert check_gpio(False, no_lgpio, "lgpio").ok


def test_broker_on_a_closed_port_fails():
    from tests.conftest import free_loopback_port

    result = check_broker(True, "127.0.0.1", free_loopback_port(), timeout_s=2)
    assert not result.ok and "127.0.0.1" in result.detail


@pytest.mark.skipif(shutil.which("mosquitto_passwd") is None, reason="needs mosquitto_passwd")
def test_broker_checks_the_configured_credentials(make_mosquitto, tmp_path):
    passwd = tmp_path / "passwd"
    subprocess.run(
        ["mosquitto_passwd", "-b", "-c", str(passwd), "pi-inspect", "s3cret"],
        check=True,
        capture_output=True,
    )
    broker = make_mosquitto(extra_conf=["allow_anonymous false", f"password_file {passwd}"])
    good = check_broker(True, broker.host, broker.port, "pi-inspect", "s3cret")
    assert good.ok, good.line()
    bad = check_broker(True, broker.host, broker.port, "pi-inspect", "wrong")
    assert not bad.ok and "refused" in bad.detail and "credentials" in bad.fix
    assert check_broker(False, "unused", 1).ok


def test_bundle_hash_ok_and_tampered(tmp_path):
    bundle = make_bundle(tmp_path, "seam", 7)
    ok = check_bundle(bundle)
    assert ok.ok and "seam 7 sha256" in ok.detail
    (bundle / "model.tflite").write_bytes(b"tampered")
    bad = check_bundle(bundle)
    assert not bad.ok and "does not match" in bad.detail and "pi-inspect deploy" in bad.fix


def test_disk_space_is_measured_at_the_nearest_existing_parent(tmp_path):
    missing_dir = tmp_path / "state" / "snapshots"
    assert check_disk(missing_dir, need_bytes=1).ok
    assert str(tmp_path) in check_disk(missing_dir, need_bytes=1).detail
    assert not check_disk(missing_dir, need_bytes=1 << 62).ok


def test_service_state_from_systemctl():
    assert check_service("pi-inspect", lambda cmd: (0, "active\n")).ok
    failed = check_service("pi-inspect", lambda cmd: (3, "failed\n"))
    assert not failed.ok and failed.detail == "pi-inspect failed" and "journalctl" in failed.fix

    def no_systemctl(cmd):
        raise FileNotFoundError(cmd[0])

    assert not check_service("pi-inspect", no_systemctl).ok


def test_doctor_command_prints_one_line_per_check_and_exits_1_on_failure(tmp_path, capsys):
    bundle = make_bundle(tmp_path, "seam", 3)
    config = tmp_path / "config.toml"
    config.write_text(
        f'state_dir = "{tmp_path / "state"}"\n'
        f'[source]\nkind = "folder"\nuri = "{tmp_path / "no-such-folder"}"\n'
        f'[model]\nbundle = "{bundle}"\n[gpio]\npin_factory = "mock"\n'
    )
    code = main(["doctor", "--config", str(config), "--skip", "service"])
    lines = capsys.readouterr().out.splitlines()[1:]
    names = [line[5:].split(":")[0] for line in lines]
    assert names == ["python", "runtime", "numpy", "camera", "gpio", "broker", "bundle", "disk"]
    assert all(line.startswith(("OK   ", "FAIL ")) for line in lines)
    assert lines[3].startswith("FAIL camera") and code == 1
    assert lines[4] == "OK   gpio: pin factory MockFactory"
    assert lines[6].startswith("OK   bundle: src-seam-3: seam 3")
