"""Bring a station's samples into a data set folder on the workstation, and off the station.

A station keeps defect snapshots and collected samples (``[collect]``, the ``collect`` command)
in one store: ``<stem>.jpg`` (the inspected view), ``<stem>.json`` (its sidecar: device, model,
scores, thresholds, verdict, why it was kept, the operator's right labels where given) and,
for a defect, ``<stem>.heat.jpg``. ``pull`` copies them into

- ``DEST/images/<stem>.jpg``: what ``pi-inspect label DEST/images --out ...`` opens;
- ``DEST/samples.csv``: one row per sample, what came from which device and model, and why
  (``name, device, sample, time, model, model_version, verdict, right_labels, scores,
  thresholds, said``: ``scores`` and ``thresholds`` as JSON objects, ``right_labels`` the
  operator's labels joined by ``;``, ``said`` 1 where the operator gave them);
- ``DEST/labels.csv``: the samples an operator gave the right labels for, as a lookup table
  ``train`` reads (a label column per label of the model that scored them).

A file leaves the station only once its copy is verified: locally by comparing sha256, from a
Pi by rsync (``--remove-source-files`` deletes a source file only after rsync's whole-file
checksum of the copy matched). Pulling again adds what is new; nothing is overwritten.
"""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from pi_inspect.edge.data.table import write_table
from pi_inspect.edge.deploy_ssh import parse_target
from pi_inspect.edge.errors import DataError
from pi_inspect.edge.snapshots import stem_of

COLUMNS = (
    "name", "device", "sample", "time", "model", "model_version", "verdict", "right_labels",
    "scores", "thresholds",
)
RSYNC_TIMEOUT_S = 600


@dataclass
class Pulled:
    added: list[str] = field(default_factory=list)  # stems new to DEST
    already: int = 0  # stems DEST had (removed from the source all the same)
    labelled: int = 0  # rows of labels.csv
    skipped: list[str] = field(default_factory=list)  # "<file>: why"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _groups(folder: Path) -> dict[str, list[Path]]:
    groups: dict[str, list[Path]] = {}
    for path in sorted(folder.iterdir()):
        stem = stem_of(path.name)
        if stem is not None and path.is_file() and not path.is_symlink():
            groups.setdefault(stem, []).append(path)
    return groups


def _fetch_remote(source: str, stage: Path, keep: bool) -> None:
    """rsync a Pi's store into ``stage`` (the store's own files only); sources removed after
    their verified copy unless ``keep``."""
    cmd = ["rsync", "-a", "--include=*.jpg", "--include=*.json", "--exclude=*"]
    if not keep:
        cmd.append("--remove-source-files")
    cmd += [source.rstrip("/") + "/", str(stage) + "/"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=RSYNC_TIMEOUT_S)
    except FileNotFoundError:
        raise DataError("pull from a Pi needs rsync (apt install rsync)") from None
    except subprocess.TimeoutExpired:
        raise DataError(f"rsync from {source} did not finish within {RSYNC_TIMEOUT_S} s") from None
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        raise DataError(f"rsync from {source} failed: {lines[-1] if lines else proc.returncode}")


def pull(source: str, dest: Path, *, keep: bool = False, local: bool = False) -> Pulled:
    """Copy every sample of ``source`` (a store folder, or ``[user@]host:/path``) into
    ``dest``; remove each from the source once its copy is verified, unless ``keep``."""
    dest = Path(dest)
    images = dest / "images"
    images.mkdir(parents=True, exist_ok=True)
    remote = None if local else parse_target(source)
    with tempfile.TemporaryDirectory(prefix=".pull-", dir=dest) as tmp:
        if remote is not None:
            _fetch_remote(source, Path(tmp), keep)
            folder, verify = Path(tmp), False
        else:
            folder, verify = Path(source), True
            if not folder.is_dir():
                raise DataError(f"{folder}: no such sample folder")
        return _take(folder, dest, keep=keep or not verify, verify=verify)


def _take(folder: Path, dest: Path, *, keep: bool, verify: bool) -> Pulled:
    result = Pulled()
    rows = _read_rows(dest / "samples.csv")
    for stem, files in _groups(folder).items():
        frame = folder / f"{stem}.jpg"
        sidecar = folder / f"{stem}.json"
        if frame not in files or sidecar not in files:
            continue  # still being written, or half of a pruned group: left where it is
        try:
            meta = json.loads(sidecar.read_text())
        except (OSError, ValueError) as exc:
            result.skipped.append(f"{sidecar.name}: {exc}")
            continue
        target = dest / "images" / frame.name
        if stem in rows:
            result.already += 1
        else:
            shutil.copyfile(frame, target)
            if verify and _sha256(target) != _sha256(frame):
                target.unlink()
                result.skipped.append(f"{frame.name}: the copy does not match; left on the device")
                continue
            rows[stem] = _row(stem, meta)
            result.added.append(stem)
        if not keep:
            for path in files:
                path.unlink(missing_ok=True)
    _write_rows(dest / "samples.csv", rows)
    result.labelled = _write_labels(dest, rows)
    return result


def _row(stem: str, meta: dict) -> dict[str, str]:
    event = meta.get("event") or {}
    right = meta.get("right_labels")
    return {
        "name": f"images/{stem}.jpg",
        "device": str(meta.get("device") or event.get("device") or ""),
        "sample": str(meta.get("sample") or ("defect" if event else meta.get("request", ""))),
        "time": str(meta.get("time") or event.get("started_at") or ""),
        "model": str(meta.get("model") or ""),
        "model_version": str(meta.get("model_version") or ""),
        "verdict": ";".join(meta.get("verdict") or ([event["label"]] if event.get("label") else [])),
        "right_labels": ";".join(right) if isinstance(right, list) else "",
        "scores": json.dumps(meta.get("scores") or {}),  # in the model's label order
        "thresholds": json.dumps(meta.get("thresholds") or {}),
        "_said": "1" if isinstance(right, list) else "",
    }


def _read_rows(path: Path) -> dict[str, dict[str, str]]:
    if not path.exists():
        return {}
    with path.open(newline="") as f:
        return {Path(r["name"]).stem: {**r, "_said": r.get("said", "")} for r in csv.DictReader(f)}


def _write_rows(path: Path, rows: dict[str, dict[str, str]]) -> None:
    tmp = path.with_suffix(".csv.tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=[*COLUMNS, "said"], extrasaction="ignore")
        writer.writeheader()
        for stem in sorted(rows):
            writer.writerow({**rows[stem], "said": rows[stem].get("_said", "")})
    tmp.replace(path)


def _write_labels(dest: Path, rows: dict[str, dict[str, str]]) -> int:
    """labels.csv: the samples whose right labels an operator gave (an empty list is good)."""
    said = {stem: r for stem, r in rows.items() if r.get("_said")}
    if not said:
        return 0
    labels: list[str] = []
    for r in said.values():
        for label in json.loads(r["scores"] or "{}"):
            if label not in labels:
                labels.append(label)
    names = [r["name"] for r in said.values()]
    y = [[1.0 if label in r["right_labels"].split(";") else 0.0 for label in labels] for r in said.values()]
    write_table(dest / "labels.csv", names, labels, y)
    return len(names)
