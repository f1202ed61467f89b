"""`pi-inspect` subcommands: one module per command, each exposing configure(parser) and run(args) -> int
and cheap to import (heavy dependencies are imported inside run)."""
