"""``pi-inspect doctor``: check this device, one line per check, OK or FAIL with a fix.

Each check is a small function that takes what it inspects (versions, a source factory, a
broker address, a command runner) so tests drive both outcomes without the hardware.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pi_inspect.edge.config import output_context
from pi_inspect.edge.outputs.registry import plugins

DEFAULT_CONFIG = "/etc/pi-inspect/config.toml"
MIN_FREE_BYTES = 100_000_000


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""

    def line(self) -> str:
        if self.ok:
            return f"OK   {self.name}: {self.detail}"
        return f"FAIL {self.name}: {self.detail} -- fix: {self.fix}"


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def check_python(version: tuple[int, int] = sys.version_info[:2]) -> Check:
    text = f"Python {version[0]}.{version[1]}"
    if (3, 10) <= version <= (3, 13):
        return Check("python", True, text)
    return Check(
        "python", False, f"{text} is not supported", "use Python 3.11 (Bookworm) or 3.13 (Trixie)"
    )


def check_runtime(litert: str | None, tflite: str | None) -> Check:
    found = [f"ai-edge-litert {litert}"] * bool(litert) + [f"tflite-runtime {tflite}"] * bool(
        tflite
    )
    if found:
        return Check("runtime", True, ", ".join(found))
    return Check("runtime", False, "no TFLite runtime installed", "pip install 'pi-inspect[edge]'")


def check_numpy(numpy: str | None, tflite: str | None) -> Check:
    """tflite-runtime 2.14 wheels are built against numpy 1.x and crash on numpy 2."""
    if numpy is None:
        return Check("numpy", False, "numpy is not installed", "pip install 'pi-inspect[edge]'")
    if tflite and int(numpy.split(".")[0]) >= 2:
        return Check(
            "numpy",
            False,
            f"numpy {numpy} with tflite-runtime {tflite} (built for numpy 1.x)",
            "pip install 'numpy<2' in the venv, or uninstall tflite-runtime and use LiteRT",
        )
    return Check("numpy", True, f"numpy {numpy}")


def check_camera(open_source: Callable[[], Any], timeout_s: float = 10.0) -> Check:
    """Open the configured source and read one frame (in a thread: a read can block)."""
    result: dict[str, Any] = {}

    def grab() -> None:
        source = None
        try:
            source = open_source()
            source.open()
            frame = source.read()
            result["frame"] = frame
            result["name"] = getattr(source, "name", "source")
        except Exception as exc:  # noqa: BLE001 - any failure is the answer here
            result["error"] = exc
        finally:
            if source is not None:
                with contextlib.suppress(Exception):
                    source.close()

    thread = threading.Thread(target=grab, daemon=True)
    thread.start()
    thread.join(timeout_s)
    fix = "check the cable, ls /dev/video* /dev/media*, and that pi-inspect is in group video"
    if thread.is_alive():
        return Check("camera", False, f"no frame within {timeout_s:g} s", fix)
    if "error" in result:
        return Check("camera", False, str(result["error"]).splitlines()[0], fix)
    frame = result.get("frame")
    if frame is None:
        return Check("camera", False, "the source gave no frame", fix)
    h, w = frame.image.shape[:2]
    return Check("camera", True, f"{result['name']}: {w}x{h} frame")


def check_gpio(enabled: bool, make_factory: Callable[[], Any], wanted: str | None) -> Check:
    if not enabled:
        return Check("gpio", True, "disabled in config")
    try:
        factory = make_factory()
    except Exception as exc:  # noqa: BLE001
        return Check(
            "gpio",
            False,
            f"pin factory {wanted or 'default'}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
            "apt install python3-lgpio, venv with --system-site-packages, user in group gpio",
        )
    name = type(factory).__name__
    close = getattr(factory, "close", None)
    if close is not None:
        close()
    return Check("gpio", True, f"pin factory {name}")


def make_pin_factory(name: str | None) -> Any:
    """Build gpiozero's pin factory by entry-point name (None: gpiozero's own default)."""
    from gpiozero import Device

    if name is None:
        return Device._default_pin_factory()
    for ep in importlib.metadata.entry_points(group="gpiozero_pin_factories"):
        if ep.name == name:
            return ep.load()()
    raise LookupError(f"gpiozero has no pin factory {name!r}")


def check_broker(
    enabled: bool,
    host: str,
    port: int,
    username: str | None = None,
    password: str | None = None,
    timeout_s: float = 5.0,
) -> Check:
    """Connect with the configured credentials and wait for the broker's CONNACK."""
    if not enabled:
        return Check("broker", True, "MQTT disabled in config")
    import paho.mqtt.client as mqtt

    where = f"{host}:{port}" + (f" as {username}" if username else "")
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="")
    if username:
        client.username_pw_set(username, password)
    answered = threading.Event()
    reason: list[Any] = []

    def on_connect(_c: Any, _u: Any, _flags: Any, rc: Any, _props: Any = None) -> None:
        reason.append(rc)
        answered.set()

    client.on_connect = on_connect
    try:
        client.connect(host, port, keepalive=10)
    except OSError as exc:
        return Check(
            "broker",
            False,
            f"{where}: {exc.strerror or exc}",
            "check mqtt.host/port and the network",
        )
    client.loop_start()
    try:
        if not answered.wait(timeout_s):
            return Check(
                "broker",
                False,
                f"{where}: no answer within {timeout_s:g} s",
                "check mqtt.port and TLS",
            )
        rc = reason[0]
        if getattr(rc, "is_failure", bool(rc)):
            return Check(
                "broker",
                False,
                f"{where}: refused ({rc})",
                "check mqtt.username and the credentials file",
            )
        return Check("broker", True, f"{where}: connected")
    finally:
        client.disconnect()
        client.loop_stop()


def check_bundle(bundle: str | Path | None, name: str = "bundle") -> Check:
    from pi_inspect.edge.bundle import default_bundle_dir, verify_bundle
    from pi_inspect.edge.errors import BundleError

    path = Path(bundle) if bundle else default_bundle_dir()
    try:
        manifest = verify_bundle(path)
    except BundleError as exc:
        return Check(
            name, False, str(exc), "pi-inspect deploy BUNDLE pi@host:/var/lib/pi-inspect/models"
        )
    from pi_inspect.edge.errors import MissingExtraError
    from pi_inspect.edge.runtime import load_classifier

    resolved = path.resolve().name
    try:  # what the daemon does: load it and run its golden set
        with load_classifier(path, num_threads=1) as clf:
            golden = "golden set passed" if clf.manifest.golden is not None else "no golden set"
    except MissingExtraError:
        golden = "not loaded: no runtime"
    except BundleError as exc:
        return Check(
            name, False, str(exc), "pi-inspect deploy BUNDLE pi@host:/var/lib/pi-inspect/models"
        )
    return Check(
        name,
        True,
        f"{resolved}: {manifest.name} {manifest.version} sha256 {manifest.sha256[:12]}, {golden}",
    )


def check_disk(path: Path, need_bytes: int) -> Check:
    """Free space where snapshots go (the nearest existing parent of the snapshot dir)."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    detail = f"{free / 1e9:.1f} GB free at {probe}"
    if free >= need_bytes:
        return Check("disk", True, detail)
    return Check(
        "disk",
        False,
        f"{detail}, snapshots may need {need_bytes / 1e9:.1f} GB",
        "free space or lower snapshots.max_bytes",
    )


def check_service(service: str, run: Callable[[Sequence[str]], tuple[int, str]]) -> Check:
    try:
        code, out = run(["systemctl", "is-active", service])
    except FileNotFoundError:
        return Check("service", False, "systemctl not found", "run doctor on the Pi (systemd)")
    state = out.strip() or "unknown"
    if code == 0 and state == "active":
        return Check("service", True, f"{service} {state}")
    return Check(
        "service",
        False,
        f"{service} {state}",
        f"sudo systemctl start {service}; journalctl -u {service} -b",
    )


def _run_command(cmd: Sequence[str]) -> tuple[int, str]:
    proc = subprocess.run(list(cmd), capture_output=True, text=True, timeout=15)
    return proc.returncode, proc.stdout


def collect(config: Any, service: str) -> list[tuple[str, Callable[[], Check]]]:
    """The checks for ``config``, in order, each ready to run (the output plugins' own after
    the station's hardware)."""
    from pi_inspect.edge.sources import make_source

    outputs: list[tuple[str, Callable[[], Check]]] = []
    context = output_context(config)
    for name, plugin in plugins().items():
        if plugin.doctor is not None:
            outputs += plugin.doctor(getattr(config, name), context)
    hardware: list[tuple[str, Callable[[], Check]]] = []
    models: list[tuple[str, Callable[[], Check]]] = []
    stations = config.station_configs()
    for name, c in stations.items():  # each station's camera, pins, bundles and disk
        tag = f" ({name})" if len(stations) > 1 else ""
        hardware += [
            (f"camera{tag}", lambda c=c: check_camera(lambda: make_source(c.source))),
            (
                f"gpio{tag}",
                lambda c=c: check_gpio(
                    c.gpio.enabled, lambda: make_pin_factory(c.gpio.pin_factory), c.gpio.pin_factory
                ),
            ),
        ]
        models.append((f"bundle{tag}", lambda c=c: check_bundle(c.model.bundle)))
        if c.anomaly.bundle:
            models.append(
                (
                    f"anomaly bundle{tag}",
                    lambda c=c: check_bundle(c.anomaly.bundle, "anomaly bundle"),
                )
            )
        need = max(MIN_FREE_BYTES, c.snapshots.max_bytes)
        models.append((f"disk{tag}", lambda c=c, need=need: check_disk(c.snapshot_dir(), need)))
    return [
        ("python", check_python),
        ("runtime", lambda: check_runtime(_version("ai-edge-litert"), _version("tflite-runtime"))),
        ("numpy", lambda: check_numpy(_version("numpy"), _version("tflite-runtime"))),
        *hardware,
        *outputs,
        *models,
        ("service", lambda: check_service(service, _run_command)),
    ]
