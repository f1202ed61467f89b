"""The operator console as a plugin: the ``[console]`` section; Flask and waitress load only
when it is built."""

from __future__ import annotations

from pi_inspect.edge.console.config import ConsoleConfig
from pi_inspect.edge.outputs import Output, OutputContext, OutputPlugin


def _build(section: ConsoleConfig, context: OutputContext) -> Output | None:
    from pi_inspect.edge.console import start_console

    return start_console(section, context)


PLUGIN = OutputPlugin(
    name="console",
    section=ConsoleConfig,
    build=_build,
    meanings={
        "enabled": "serve the operator console (live view, events, review)",
        "host": "address the console listens on (a non-loopback one needs credentials)",
        "port": "port the console listens on",
        "review_max_count": "most 'this verdict is wrong' review items kept",
    },
)
