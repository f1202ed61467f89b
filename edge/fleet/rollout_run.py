"""``pi-inspect fleet rollout``: the bundle served over HTTP for the stations to fetch, the
desired states published through one broker connection, the gates of ``rollout.Rollout``;
``--resume`` and ``--abort`` take up the rollout whose record is on the broker."""

from __future__ import annotations

import argparse
import functools
import http.server
import ssl
import tarfile
import tempfile
import threading
import time
from pathlib import Path

from pi_inspect.edge.errors import ConfigError
from pi_inspect.edge.fleet.rollout import (
    ACTIVE,
    RECORD_TOPIC,
    Bundle,
    Gates,
    Plan,
    Rollout,
    plan_of,
)
from pi_inspect.edge.stop_signals import on_stop_signals

RECORD_WAIT_S = 10.0  # at most, for the broker to answer the subscription to the record


class _Quiet(http.server.SimpleHTTPRequestHandler):
    timeout = 60  # a client that stalls (or never says a word over TLS) loses its thread only

    def log_message(self, *args: object) -> None:
        pass


def serve_folder(
    folder: Path, host: str, port: int, tls: tuple[Path, Path] | None = None
) -> http.server.ThreadingHTTPServer:
    """Serve ``folder``'s files (the bundle archive only) on ``host:port`` from a thread; over
    HTTPS with ``tls`` = (certificate chain file, key file)."""
    try:
        server = http.server.ThreadingHTTPServer(
            (host, port), functools.partial(_Quiet, directory=str(folder))
        )
    except OSError as exc:
        raise ConfigError(f"--serve {host}:{port}: cannot listen ({exc.strerror or exc})") from None
    if tls is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            context.load_cert_chain(str(tls[0]), str(tls[1]))
        except (OSError, ssl.SSLError) as exc:
            server.server_close()
            raise ConfigError(f"--tls-cert/--tls-key: {exc}") from None
        # the handshake happens in each request's thread, on its first read, under its timeout
        server.socket = context.wrap_socket(
            server.socket, server_side=True, do_handshake_on_connect=False
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
    """A new rollout, ``--resume`` of the one on the broker, or ``--abort`` of it. Exit status:
    0 done (or aborted with every station confirming), 1 a gate stopped it, it was interrupted or
    there is nothing to take up; a broker away is an error (exit 2 from the command line)."""
    from pi_inspect.edge.fleet.status import BrokerUnreachable
    from pi_inspect.edge.fleet.watch import FleetWatch

    if args.abort and args.resume:
        raise ConfigError("--resume and --abort: one or the other")
    if not args.abort and args.bundle is None:
        raise ConfigError("name the bundle folder to roll out")
    with FleetWatch(host, port, args.prefix, args.username, password) as watch:
        if not watch.wait_connected(10.0):
            raise BrokerUnreachable(f"broker {watch.address} {watch.error or 'refused: no answer'}")
        record = watch.wait_record(RECORD_WAIT_S)
        if args.abort or args.resume:
            if record is None:
                print(f"no rollout on the broker under {args.prefix}/{RECORD_TOPIC}")
                return 1
            if args.resume and record["state"] not in ACTIVE:
                print(f"rollout {record['id']} is {record['state']}: nothing to resume")
                return 1
        elif record is not None and record["state"] in ACTIVE:
            print(
                f"rollout {record['id']} is {record['state']} at ring {record['ring']} of "
                f"{len(record['sizes'])}: take it up first with --resume BUNDLE or --abort"
            )
            return 1
        if args.abort:
            rollout = _rollout(plan_of(record), args, watch)
            with on_stop_signals(rollout.interrupt):
                return 0 if rollout.abort(record) else 1
        return _serve_and_run(args, watch, record, inventory)


def _serve_and_run(args, watch, record, inventory: list[str]) -> int:
    serve_host, _, serve_port = args.serve.rpartition(":")
    if not serve_port.isdigit():
        raise ConfigError(f"--serve {args.serve}: expected HOST:PORT")
    with tempfile.TemporaryDirectory(prefix="pi-inspect-rollout-") as tmp:
        name, bundle_name, sha = pack(args.bundle, Path(tmp))
        if args.resume and sha != record["bundle"]["sha256"]:
            raise ConfigError(
                f"{args.bundle} is {sha[:12]}; rollout {record['id']} rolls out "
                f"{record['bundle']['sha256'][:12]}"
            )
        if (args.tls_cert is None) != (args.tls_key is None):
            raise ConfigError("--tls-cert and --tls-key go together")
        tls = (args.tls_cert, args.tls_key) if args.tls_cert is not None else None
        server = serve_folder(Path(tmp), serve_host, int(serve_port), tls)
        scheme = "https" if tls else "http"
        url = f"{scheme}://{serve_host}:{server.server_address[1]}/{name}"
        try:
            if args.resume:
                rollout = _rollout(plan_of(record, url), args, watch)
                with on_stop_signals(rollout.interrupt):
                    ok = rollout.resume(record)
            else:
                stations = [s for s in (args.stations or "").split(",") if s] or inventory
                if not stations:
                    raise ConfigError("name the stations: --stations a,b,c or --inventory FILE")
                gates = Gates(args.soak, args.min_frames, args.min_agreement,
                              args.max_alarm_delta, args.apply_timeout)  # fmt: skip
                try:
                    plan = Plan.make(f"r-{sha[:8]}-{int(time.time())}",
                                     Bundle(bundle_name, sha, url), stations, args.rings, gates)  # fmt: skip
                except ValueError as exc:
                    raise ConfigError(f"--rings {args.rings}: {exc}") from None
                rollout = _rollout(plan, args, watch)
                with on_stop_signals(rollout.interrupt):
                    ok = rollout.run()
        finally:
            server.shutdown()
            server.server_close()
    if rollout.state == "interrupted":
        print(f"resume: pi-inspect fleet rollout --resume {args.bundle}; undo: --abort")
    return 0 if ok else 1


def _rollout(plan: Plan, args: argparse.Namespace, watch) -> Rollout:
    def echo(line: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} {line}", flush=True)

    return Rollout(
        plan, prefix=args.prefix, publish=watch.publish, views=watch.views,
        connected=lambda: watch.connected, echo=echo,
    )  # fmt: skip
