"""The operator console: live view, scores, LEDs, stats, events, actions and /metrics in a browser.

The daemon builds it through its plugin (``pi_inspect.edge.console.plugin``) with
:func:`start_console` when ``[console] enabled = true``; it is an
``Output`` (it keeps what the daemon dispatches) with a frame tap (frames flow only while someone
watches). Importing this package is cheap: Flask, waitress and prometheus_client are imported
when a console starts. Docs: docs/console.md.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    from pi_inspect.edge.console.config import ConsoleConfig
    from pi_inspect.edge.console.output import ConsoleOutput
    from pi_inspect.edge.outputs import OutputContext

__all__ = ["build_console", "start_console"]

log = logging.getLogger(__name__)


def build_console(
    c: ConsoleConfig,
    context: OutputContext,
    *,
    port: int | None = None,
    clock: Callable[[], float] | None = None,
) -> tuple[ConsoleOutput, Any]:
    """The console's output and its (not yet started) server, wired from its section;
    ``clock`` drives the login sessions and the wrong-token throttle (a test passes its own)."""
    from pi_inspect.edge.console.actions import Actions
    from pi_inspect.edge.console.config import is_loopback
    from pi_inspect.edge.console.live import LiveView, LiveViews
    from pi_inspect.edge.console.output import ConsoleOutput
    from pi_inspect.edge.console.review import ReviewStore
    from pi_inspect.edge.console.security import Guard, read_token
    from pi_inspect.edge.console.server import ConsoleServer, create_app

    token = read_token(c.credentials) if c.credentials else None
    loopback = is_loopback(c.host)
    guard = Guard(
        loopback=loopback,
        token=token if not loopback else None,
        allow_readonly_view=c.allow_readonly_view,
        **({"clock": clock} if clock is not None else {}),
    )
    review_dir = Path(c.review_dir).expanduser()
    if not review_dir.is_absolute():
        review_dir = context.state_dir / review_dir
    review = ReviewStore(
        review_dir,
        max_count=c.review_max_count,
        max_bytes=c.review_max_bytes,
        min_free_bytes=c.review_min_free_bytes,
        max_per_minute=c.review_max_per_minute,
    )
    review.prune()  # bounds lowered since the last run, and a crash's temporary folders
    snapshot_dir = context.snapshot_dir
    console = ConsoleOutput(
        LiveViews(lambda: LiveView(c.fps), stations=context.stations),
        events_kept=c.events_kept,
        stations=context.stations,
    )
    actions = Actions(console, review, snapshot_dir, context.snapshot_dirs)
    app = create_app(
        console,
        guard,
        actions,
        review=review,
        fps=c.fps,
        stations=context.stations,
    )
    server = ConsoleServer(app, c.host, c.port if port is None else port)
    console.on_close(server.close)
    return console, server


def start_console(section: ConsoleConfig, context: OutputContext) -> ConsoleOutput | None:
    """Build and start the console; a console that cannot start is one log line, never the end
    of inspection (the daemon runs on without it)."""
    from pi_inspect.edge.errors import PiInspectError

    try:
        console, server = build_console(section, context)
        server.start()
    except (PiInspectError, OSError) as exc:
        log.error("console not started: %s", exc)
        return None
    log.info("console on %s", server.url)
    return console
