"""Copying a bundle for ``deploy``: the files its manifest lists, each a bounded regular file.

A bundle folder is input from outside, and deploy runs as root. Only ``manifest.json`` and the
files it names are copied; anything else in the folder (notes, links, folders, devices) is left
out and named in one line. A listed file must be a regular file of at most ``MAX_FILE_BYTES``
(``lstat``, then opened without following a link or waiting on a FIFO), all of them together at
most ``MAX_BUNDLE_BYTES``: a link to ``/etc/shadow`` or ``/dev/zero`` is refused, never read.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from pi_inspect.edge.bundle import read_manifest
from pi_inspect.edge.errors import BundleError
from pi_inspect.edge.manifest import MANIFEST, MAX_MANIFEST_BYTES, Manifest

MAX_FILE_BYTES = 256 << 20  # a float reference model of a large network still fits
MAX_BUNDLE_BYTES = 512 << 20  # every listed file together: a Pi's SD card holds several
MAX_NAMES_SHOWN = 5  # the left-out line names this many, then counts the rest
_CHUNK = 1 << 20
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)


def listed_files(manifest: Manifest) -> list[str]:
    """What a deploy copies: the manifest, then every file it names (model, reference, golden)."""
    return [MANIFEST, *(name for name in manifest.files if name != MANIFEST)]


def _limit(name: str) -> int:
    return MAX_MANIFEST_BYTES if name == MANIFEST else MAX_FILE_BYTES


def _kind(mode: int) -> str:
    """What a file that is not a regular file is, in words."""
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _mib(size: int) -> str:
    return f"{size / (1 << 20):g} MiB"


def _refuse(bundle: Path, name: str, what: str) -> BundleError:
    return BundleError(
        f"deploy refused: {name} in bundle {bundle} is {what}; every file the manifest lists "
        "must be a regular file inside the bundle"
    )


def _too_big(bundle: Path, name: str) -> BundleError:
    return BundleError(f"deploy refused: {name} in bundle {bundle} is larger than {_mib(_limit(name))}")


def _too_much(bundle: Path) -> BundleError:
    return BundleError(f"deploy refused: the files of bundle {bundle} add up to more than {_mib(MAX_BUNDLE_BYTES)}")


def check_listed(bundle: Path, manifest: Manifest) -> None:
    """Refuse, before reading any of them, listed files that are not bounded regular files."""
    total = 0
    for name in listed_files(manifest):
        try:
            st = os.lstat(bundle / name)
        except FileNotFoundError:
            raise BundleError(f"bundle {bundle}: {name} is missing") from None
        except OSError as exc:
            raise BundleError(f"bundle {bundle}: {name} is unreadable ({exc.strerror or exc})") from None
        if not stat.S_ISREG(st.st_mode):
            raise _refuse(bundle, name, _kind(st.st_mode))
        if st.st_size > _limit(name):
            raise _too_big(bundle, name)
        total += st.st_size
        if total > MAX_BUNDLE_BYTES:
            raise _too_much(bundle)


def left_out(bundle: Path, manifest: Manifest) -> list[str]:
    """The names in ``bundle`` the manifest does not list (not followed, not read), sorted."""
    listed = set(listed_files(manifest))
    try:
        with os.scandir(bundle) as entries:
            return sorted(e.name for e in entries if e.name not in listed)
    except OSError as exc:
        raise BundleError(f"bundle {bundle} cannot be listed ({exc.strerror or exc})") from None


def left_out_line(names: list[str]) -> str | None:
    """One line naming what a deploy left out, or None when nothing was."""
    if not names:
        return None
    shown = [n if n.isprintable() else ascii(n) for n in names[:MAX_NAMES_SHOWN]]
    more = f" and {len(names) - MAX_NAMES_SHOWN} more" if len(names) > MAX_NAMES_SHOWN else ""
    return f"left out, not listed in {MANIFEST}: {', '.join(shown)}{more}"


def _copy_file(bundle: Path, name: str, dst: Path, budget: int) -> int:
    """Copy one listed file to ``dst``; its size. The file is opened without following a link
    (``O_NOFOLLOW``) or waiting for a FIFO's writer (``O_NONBLOCK``), checked with ``fstat`` and
    read no further than its limit, so a file swapped after ``check_listed`` is refused too."""
    src = bundle / name
    try:
        fd = os.open(src, _OPEN_FLAGS)
    except OSError as exc:
        if os.path.islink(src):
            raise _refuse(bundle, name, "a symbolic link") from None
        raise BundleError(f"bundle {bundle}: {name} is unreadable ({exc.strerror or exc})") from None
    with os.fdopen(fd, "rb") as fin:
        mode = os.fstat(fin.fileno()).st_mode
        if not stat.S_ISREG(mode):
            raise _refuse(bundle, name, _kind(mode))
        limit = min(_limit(name), budget)
        size = 0
        with open(dst, "xb") as fout:
            while block := fin.read(_CHUNK):
                size += len(block)
                if size > limit:
                    raise _too_big(bundle, name) if limit == _limit(name) else _too_much(bundle)
                fout.write(block)
            fout.flush()
            os.fsync(fout.fileno())
    return size


def copy_listed(bundle: Path, dest: Path) -> None:
    """Copy ``manifest.json`` and the files it lists from ``bundle`` into the new folder ``dest``.

    Nothing else is copied. ``BundleError`` when a listed file is not a bounded regular file;
    the caller removes a half-made ``dest`` (it lives in a staging folder it deletes).
    """
    manifest = read_manifest(bundle)
    check_listed(bundle, manifest)
    dest.mkdir(mode=0o755)
    budget = MAX_BUNDLE_BYTES
    for name in listed_files(manifest):
        budget -= _copy_file(bundle, name, dest / name, budget)
    fsync_dir(dest)


def fsync_dir(path: Path) -> None:
    """Persist new names in ``path`` (a power cut right after a deploy must not undo it)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def match_owner(path: Path, like: Path) -> None:
    """As root, hand the new bundle to the models directory's owner (the service user)."""
    if os.geteuid() != 0:
        return
    st = like.stat()
    for p in [path, *path.rglob("*")]:
        os.chown(p, st.st_uid, st.st_gid, follow_symlinks=False)


def safe_name(name: str) -> str:
    """A bundle name usable as a directory name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "model"


def stage_listed(bundle: Path, into: Path) -> tuple[Path, str | None]:
    """Copy ``bundle``'s listed files into a new folder under ``into``, to be sent as it is.

    Returns the folder and the left-out line (or None). The rules of a local deploy: a listed
    file that is not a bounded regular file refuses the deploy, nothing unlisted is copied.
    """
    manifest = read_manifest(bundle)
    check_listed(bundle, manifest)
    staged = into / safe_name(bundle.resolve().name)
    copy_listed(bundle, staged)
    return staged, left_out_line(left_out(bundle, manifest))
