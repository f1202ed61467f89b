"""Filesystem checks on a valid config: what the validators (pure, no I/O) cannot know.

``check-config`` and ``run`` both call ``check(config)``, so a config that ``check-config``
accepts does not make ``run`` fail at start: a directory path blocked by a file, a ``~user``
that does not exist, a spool path that is a directory or a device. Problems are
``key.path: message`` lines like the validators'. Things that may appear later are not problems:
a missing bundle or camera is a fault the daemon shows and retries, and a directory that does not
exist yet is created by the daemon (or by systemd's ``StateDirectory=``).
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from pi_inspect.edge.config import Config
from pi_inspect.edge.errors import ConfigError
from pi_inspect.edge.outputs.registry import plugins


def expand(key: str, value: str, problems: list[str]) -> Path | None:
    """``value`` with ``~``/``~user`` expanded, or None (and a problem) when that cannot be."""
    if not value.startswith("~"):
        return Path(value)
    expanded = os.path.expanduser(value)
    if expanded.startswith("~"):
        user = value[1:].split("/", 1)[0]
        who = f"no user {user!r}" if user else "no home directory"
        problems.append(f"{key}: cannot expand {value!r}: {who} on this machine")
        return None
    return Path(expanded)


def _lstat(path: Path) -> os.stat_result | None | OSError:
    try:
        return os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        return exc


def _blocked_ancestor(key: str, path: Path, problems: list[str]) -> None:
    """``path`` does not exist: each existing ancestor must be a directory for it to be made."""
    for parent in path.parents:
        st = _lstat(parent)
        if st is None:
            continue
        if isinstance(st, OSError):
            if st.errno in (errno.ENAMETOOLONG, errno.ELOOP):
                problems.append(f"{key}: {path}: {st.strerror}")
            return  # EACCES and the like: the service user may see more than we do
        if not stat.S_ISDIR(st.st_mode):
            problems.append(f"{key}: {path} cannot be created: {parent} is not a directory")
        return


def _existing(key: str, path: Path, problems: list[str]) -> os.stat_result | None:
    """``path``'s stat when it exists; otherwise the problem a missing or unreachable path
    makes (none where it can still be created, or where only permissions hide it), and None."""
    st = _lstat(path)
    if isinstance(st, OSError):
        if st.errno in (errno.ENAMETOOLONG, errno.ELOOP):
            problems.append(f"{key}: {path}: {st.strerror}")
        return None
    if st is None:
        _blocked_ancestor(key, path, problems)
    return st


def _directory(key: str, path: Path, problems: list[str]) -> None:
    st = _existing(key, path, problems)
    if st is not None and not stat.S_ISDIR(st.st_mode):
        problems.append(f"{key}: {path} exists and is not a directory")


def regular_file(key: str, path: Path, problems: list[str]) -> None:
    st = _existing(key, path, problems)
    if st is None:
        return
    if stat.S_ISDIR(st.st_mode):
        problems.append(f"{key}: {path} is a directory, not a file")
    elif not stat.S_ISREG(st.st_mode):
        problems.append(f"{key}: {path} is not a regular file (a device or a pipe?)")


def problems(config: Config) -> list[str]:
    """Every filesystem problem that would make ``run`` fail where ``check-config`` passed."""
    found: list[str] = []
    state: Path | None
    if config.state_dir:
        state = expand("state_dir", config.state_dir, found)
    else:
        state = config.resolved_state_dir()
    if state is not None:
        _directory("state_dir", state, found)
    state_ok = state is not None and not found
    if config.snapshots.enabled:
        snap = expand("snapshots.dir", config.snapshots.dir, found)
        if snap is not None and (snap.is_absolute() or state_ok):
            _directory("snapshots.dir", snap if snap.is_absolute() else state / snap, found)
    if config.model.bundle:
        expand("model.bundle", config.model.bundle, found)
    if config.anomaly.bundle:
        expand("anomaly.bundle", config.anomaly.bundle, found)
    for name, station in config.stations.items():  # each station's own paths
        for key in ("model", "anomaly"):
            section = getattr(station, key)
            if section is not None and section.bundle:
                expand(f"stations.{name}.{key}.bundle", section.bundle, found)
        if station.snapshots is not None and station.snapshots.enabled:
            expand(f"stations.{name}.snapshots.dir", station.snapshots.dir, found)
    if state is not None:  # each output plugin's own files
        for name, plugin in plugins().items():
            if plugin.preflight is not None:
                found += plugin.preflight(getattr(config, name), state)
    return found


def check(config: Config) -> None:
    """Raise ConfigError listing every filesystem problem (exit 2 in the CLI)."""
    found = problems(config)
    if found:
        noun = "problem" if len(found) == 1 else "problems"
        raise ConfigError(f"config refused: {len(found)} {noun} on this machine", found)
