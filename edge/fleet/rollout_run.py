"""``pi-inspect fleet rollout``: the bundle served over HTTP for the stations to fetch, the
desired states published through one broker connection, the gates of ``rollout.Rollout``."""

from __future__ import annotations

import argparse
import functools
import http.server
import tarfile
import tempfile
import threading
import time
from pathlib import Path

from pi_inspect.edge.errors import ConfigError
from pi_inspect.edge.fleet.rollout import Bundle, Gates, Rollout


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def serve_folder(folder: Path, host: str, port: int) -> http.server.ThreadingHTTPServer:
    """Serve ``folder``'s files (the bundle archive only) on ``host:port`` from a thread."""
    server = http.server.ThreadingHTTPServer(
        (host, port), functools.partial(_Quiet, directory=str(folder))
    )
    threading.Thread(target=server.serve_forever, name="fleet-bundles", daemon=True).start()
    return server


def pack(bundle: Path, into: Path) -> tuple[str, str, str]:
    """``bundle`` as ``<sha256>.tar`` in ``into``: (file name, bundle name, its identity)."""
    from pi_inspect.edge.bundle import verify_bundle

    manifest = verify_bundle(bundle)  # a broken bundle is refused here, not on every station
    sha = manifest.content_sha256
    with tarfile.open(into / f"{sha}.tar", "w") as tar:
        tar.add(bundle, arcname=bundle.name or "bundle")
    return f"{sha}.tar", manifest.name, sha


def rollout_command(
    args: argparse.Namespace, host: str, port: int, inventory: list[str], password: str | None
) -> int:
    from pi_inspect.edge.fleet.watch import FleetWatch

    stations = [s for s in (args.stations or "").split(",") if s] or inventory
    if not stations:
        raise ConfigError("name the stations: --stations a,b,c or --inventory FILE")
    serve_host, _, serve_port = args.serve.rpartition(":")
    if not serve_port.isdigit():
        raise ConfigError(f"--serve {args.serve}: expected HOST:PORT")
    gates = Gates(args.soak, args.min_frames, args.min_agreement, args.max_alarm_delta,
                  args.apply_timeout)  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="pi-inspect-rollout-") as tmp:
        name, bundle_name, sha = pack(args.bundle, Path(tmp))
        server = serve_folder(Path(tmp), serve_host, int(serve_port))
        url = f"http://{serve_host}:{server.server_address[1]}/{name}"
        try:
            with FleetWatch(host, port, args.prefix, args.username, password) as watch:
                if not watch.wait_connected(10.0):
                    raise ConnectionError(f"broker {watch.address}: {watch.error or 'no answer'}")
                rollout = Rollout(
                    f"r-{sha[:8]}-{int(time.time())}", Bundle(bundle_name, sha, url), stations,
                    args.rings, gates, prefix=args.prefix, publish=watch.publish,
                    views=watch.views,
                )  # fmt: skip
                ok = rollout.run()
                for line in rollout.log:
                    print(line)
        finally:
            server.shutdown()
            server.server_close()
    return 0 if ok else 1
