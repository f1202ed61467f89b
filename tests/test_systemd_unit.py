"""The shipped systemd unit: valid, hardened to exposure <= 2.0, and still able to do its job."""

from __future__ import annotations

import fnmatch
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[1] / "systemd" / "pi-inspect.service"
SHIPPED_EXEC = "/opt/pi-inspect/venv/bin/pi-inspect"
MAX_EXPOSURE = 2.0

needs_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="systemd-analyze not installed (Debian package 'systemd'; tests/run.sh installs it)",
)


def unit_settings(text: str) -> dict[str, list[str]]:
    """``Key -> [values]`` over all sections; systemd allows a key to repeat."""
    settings: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def test_unit_has_notify_watchdog_restart_and_reload():
    s = unit_settings(UNIT.read_text())
    assert s["Type"] == ["notify"]
    assert s["WatchdogSec"] and s["WatchdogSec"][0] not in ("0", "infinity")
    assert s["Restart"] == ["on-failure"]
    assert "-HUP $MAINPID" in s["ExecReload"][0]
    assert s["ExecStart"][0].startswith(SHIPPED_EXEC + " run --config /etc/pi-inspect/config.toml")
    assert s["User"] == ["pi-inspect"]
    for key in ("StateDirectory", "ConfigurationDirectory", "LogsDirectory"):
        assert s[key] == ["pi-inspect"]


def test_hardening_still_reaches_camera_gpio_and_network():
    s = unit_settings(UNIT.read_text())
    allowed = {v.split()[0] for v in s["DeviceAllow"]}
    assert {"char-video4linux", "char-media", "char-dma_heap", "char-gpiochip"} <= allowed
    assert all(v.split()[1] == "rw" for v in s["DeviceAllow"])
    assert set(s["SupplementaryGroups"][0].split()) == {"video", "gpio"}
    families = set(" ".join(s["RestrictAddressFamilies"]).split())
    assert {"AF_INET", "AF_INET6", "AF_UNIX", "AF_NETLINK"} <= families
    assert "PrivateDevices" not in s and "PrivateNetwork" not in s
    # gpiozero reads /proc/device-tree and /proc/cpuinfo to identify the board.
    assert s.get("ProcSubset", ["all"]) == ["all"]
    # The resolver DHCP hands out may have any address (1.1.1.1, the ISP's): no IP allow list,
    # and nothing else that would stop name resolution.
    assert "IPAddressDeny" not in s and "IPAddressAllow" not in s
    assert "PrivateNetwork" not in s and "RestrictNetworkInterfaces" not in s
    assert "SocketBindDeny" not in s


# The device nodes each gpiozero pin factory opens, as /proc/devices group names.
FACTORY_DEVICES = {
    "lgpio": ["gpiochip"],  # /dev/gpiochip*
    "rpigpio": ["bcm2835-gpiomem", "rpi-gpiomem"],  # /dev/gpiomem (Pi 4), /dev/gpiomem0-4 (Pi 5)
    "native": ["bcm2835-gpiomem", "rpi-gpiomem"],
}


@pytest.mark.parametrize("factory", sorted(FACTORY_DEVICES))
def test_unit_allows_the_devices_each_pin_factory_needs(factory):
    s = unit_settings(UNIT.read_text())
    patterns = [v.split()[0].removeprefix("char-") for v in s["DeviceAllow"] if "w" in v.split()[1]]
    for group in FACTORY_DEVICES[factory]:
        assert any(fnmatch.fnmatchcase(group, p) for p in patterns), (factory, group, patterns)
    # Raspberry Pi OS gives gpiochip and gpiomem nodes to group gpio.
    assert "gpio" in s["SupplementaryGroups"][0].split()


def test_working_directory_is_the_writable_state_directory():
    """ProtectSystem=strict leaves / read-only; lgpio writes its FIFOs into the working
    directory (or LG_WD) on import, so both must be the state directory."""
    s = unit_settings(UNIT.read_text())
    assert s["ProtectSystem"] == ["strict"]
    state = "/var/lib/" + s["StateDirectory"][0]
    assert s["WorkingDirectory"] == [state]
    env = dict(e.split("=", 1) for v in s["Environment"] for e in v.split())
    assert env["LG_WD"] == state


def _verifiable_copy(tmp_path: Path) -> Path:
    """The shipped unit with only ExecStart pointing at an executable stub (verify checks it)."""
    stub = tmp_path / "bin" / "pi-inspect"
    stub.parent.mkdir()
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    original = UNIT.read_text()
    copy = original.replace(SHIPPED_EXEC, str(stub))
    changed = [
        (a, b)
        for a, b in zip(original.splitlines(), copy.splitlines(), strict=True)
        if a != b and not a.startswith("#")
    ]
    assert [a.split("=", 1)[0] for a, _ in changed] == ["ExecStart"]
    dest = tmp_path / "pi-inspect.service"
    dest.write_text(copy)
    return dest


@needs_analyze
def test_systemd_analyze_verify_passes(tmp_path):
    unit = _verifiable_copy(tmp_path)
    proc = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    problems = [ln for ln in proc.stderr.splitlines() if "pi-inspect.service" in ln]
    assert proc.returncode == 0, proc.stderr
    assert problems == [], proc.stderr


@needs_analyze
def test_systemd_analyze_security_exposure_is_at_most_2(tmp_path):
    proc = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--no-pager", str(UNIT)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    match = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", proc.stdout)
    assert match, proc.stdout + proc.stderr
    exposure = float(match.group(1))
    print(f"systemd-analyze security --offline=true: exposure {exposure} (limit {MAX_EXPOSURE})")
    assert exposure <= MAX_EXPOSURE, proc.stdout


def _demo_model() -> Path | None:
    path = Path(__file__).resolve().parents[1] / "edge" / "assets" / "demo_bundle" / "model.tflite"
    return path if path.is_file() else None


@pytest.fixture(scope="module")
def tflite_model(tmp_path_factory) -> Path:
    """The demo bundle's model, or a tiny conv model converted with TensorFlow if it is absent."""
    demo = _demo_model()
    if demo is not None:
        return demo
    pytest.importorskip("tensorflow", reason="no demo bundle and no TensorFlow to build a model")
    out = tmp_path_factory.mktemp("mdwe") / "tiny.tflite"
    script = textwrap.dedent(
        f"""
        import numpy as np, tensorflow as tf
        tf.random.set_seed(0)
        inp = tf.keras.Input((32, 32, 3))
        x = tf.keras.layers.Conv2D(4, 3, activation="relu")(inp)
        x = tf.keras.layers.GlobalAveragePooling2D()(x)
        out = tf.keras.layers.Dense(4, activation="sigmoid")(x)
        model = tf.keras.Model(inp, out)
        conv = tf.lite.TFLiteConverter.from_keras_model(model)
        open({str(out)!r}, "wb").write(conv.convert())
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, timeout=300)
    return out


MDWE_CHILD = """
import ctypes, mmap, sys
libc = ctypes.CDLL(None, use_errno=True)
PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 1
if libc.prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0:
    print("NO_MDWE"); sys.exit(0)
try:
    mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    print("MDWE_NOT_ENFORCED"); sys.exit(0)
except OSError:
    pass
import numpy as np, cv2, gpiozero, paho.mqtt.client
from ai_edge_litert.interpreter import Interpreter
interp = Interpreter(model_path=sys.argv[1], num_threads=2)
interp.allocate_tensors()
inp = interp.get_input_details()[0]
rng = np.random.default_rng(0)
if inp["dtype"] == np.float32:
    x = rng.random(inp["shape"], dtype=np.float32)
else:
    x = rng.integers(0, 255, inp["shape"]).astype(inp["dtype"])
interp.set_tensor(inp["index"], x)
interp.invoke()
out = interp.get_tensor(interp.get_output_details()[0]["index"])
cb = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int)(lambda v: v + 1)
print("OK", out.shape, cb(1))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_MDWE is Linux-only")
def test_litert_inference_works_under_memory_deny_write_execute(tflite_model):
    """MemoryDenyWriteExecute=yes must not break the runtime: same kernel rule (PR_SET_MDWE)."""
    pytest.importorskip("ai_edge_litert")
    proc = subprocess.run(
        [sys.executable, "-c", MDWE_CHILD, str(tflite_model)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if proc.stdout.startswith("NO_MDWE"):
        pytest.skip("kernel lacks PR_SET_MDWE (Linux >= 6.3)")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("OK"), proc.stdout + proc.stderr[-2000:]
