"""Shared by the labelling tool's tests: a video, a pulled sample folder, a running server."""

from __future__ import annotations

import csv
import http.client
import json
import socket
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from pi_inspect.edge.data.table import SEED_LABELS
from pi_inspect.edge.label.server import LabelServer
from pi_inspect.edge.label.session import LabelSession, assign_keys
from pi_inspect.edge.label.sources import open_frames, with_suggestions
from pi_inspect.edge.label.store import ClassFolderStore, TableStore


def make_video(path: Path, frames: int = 6) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (64, 48))
    for i in range(frames):
        img = np.full((48, 64, 3), 30 * i, np.uint8)
        cv2.putText(img, str(i), (5, 35), cv2.FONT_HERSHEY_SIMPLEX, 1, (255, 255, 255), 2)
        writer.write(img)
    writer.release()
    return path


def start_server(source: Path, out: Path, mode: str = "multilabel", labels=SEED_LABELS):
    """The tool as ``pi-inspect label SOURCE --out OUT`` builds it (suggestions included),
    served in a background thread on a free port."""
    store = (TableStore if mode == "multilabel" else ClassFolderStore)(out, tuple(labels))
    frames, suggestions = with_suggestions(open_frames(source), source, tuple(labels))
    session = LabelSession(frames, store, assign_keys(tuple(labels)), mode, suggestions)
    return LabelServer(session, port=0).start()


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


def request(server, method, path, body=None, headers=None):
    """One request; returns (status, parsed JSON or raw bytes)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=10)
    try:
        hdrs = {"Content-Type": "application/json"} if body is not None else {}
        hdrs.update(headers or {})
        data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
        conn.request(method, path, body=data, headers=hdrs)
        response = conn.getresponse()
        raw = response.read()
        is_json = response.getheader("Content-Type") == "application/json"
        return response.status, json.loads(raw) if is_json else raw
    finally:
        conn.close()


def raw_request(server, data: bytes) -> int:
    """Send raw bytes (paths http.client refuses to build) and return the status code."""
    with socket.create_connection(("127.0.0.1", server.server_address[1]), timeout=10) as sock:
        sock.sendall(data)
        reply = b""
        while b"\r\n" not in reply:
            chunk = sock.recv(4096)
            if not chunk:
                break
            reply += chunk
    return int(reply.split(b" ", 2)[1])


# --- a folder as `pi-inspect pull` leaves it ----------------------------------------------

SAMPLE_COLUMNS = (
    "name", "device", "sample", "time", "model", "model_version", "verdict", "right_labels",
    "scores", "thresholds", "said",
)
THRESHOLDS = {"error": 0.5, "break": 0.4, "length": 0.6}


@dataclass(frozen=True)
class PulledSample:
    stem: str
    values: dict[str, bool]  # the suggestion the tool should show (labels good,error,break,length)
    by: str  # "model" or "operator"
    margin: float  # the model's margin, by construction


def make_pulled(dest: Path, count: int = 30, said: dict[int, str] | None = None) -> list[PulledSample]:
    """``dest/images/<stem>.jpg`` and ``dest/samples.csv`` for ``count`` samples scored by a model
    with labels error, break and length (good unscored). Each model row's margin is a distinct
    hundredth, spread so that name order is not margin order; rows in ``said`` (index ->
    ``;``-joined right labels) are the operator's, with the smallest margins of all."""
    said = {5: "", 17: "error;length"} if said is None else said
    (dest / "images").mkdir(parents=True)
    rows, samples = [], []
    model_rows = [k for k in range(count) if k not in said]
    for k in range(count):
        stem = f"20261207-101500-{k:05d}-near"
        colour = ((37 * k) % 256, (91 * k) % 256, (53 * k + 40) % 256)
        assert cv2.imwrite(str(dest / "images" / f"{stem}.jpg"), np.full((30, 40, 3), colour, np.uint8))
        if k in said:
            d = 0.002
            right = [r for r in said[k].split(";") if r]
            values = {label: label in right for label in SEED_LABELS}
            values["good"] = not right
            up = {"error": True, "break": False, "length": False}
        else:
            d = ((model_rows.index(k) * 37 + 5) % len(model_rows) + 1) / 100
            up = {"error": k % 2 == 0, "break": k % 3 == 0, "length": k % 5 == 0}
            values = {"good": not any(up.values()), **up}
        distance = {"error": d, "break": 0.35, "length": 0.38}
        scores = {
            label: round(THRESHOLDS[label] + (1 if up[label] else -1) * distance[label], 4)
            for label in ("error", "break", "length")
        }
        rows.append({
            "name": f"images/{stem}.jpg", "device": "line-3", "sample": "near",
            "time": f"2026-12-07T10:15:{k:02d}Z", "model": "seam", "model_version": "1",
            "verdict": ";".join(label for label in up if up[label]),
            "right_labels": said.get(k, ""), "scores": json.dumps(scores),
            "thresholds": json.dumps(THRESHOLDS), "said": "1" if k in said else "",
        })
        samples.append(PulledSample(stem, values, "operator" if k in said else "model", d))
    with (dest / "samples.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=SAMPLE_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return samples


def uncertainty_order(samples: list[PulledSample]) -> list[PulledSample]:
    """The order the tool should show: the model's rows by margin, then the operator's by name."""
    model = sorted((s for s in samples if s.by == "model"), key=lambda s: s.margin)
    return model + sorted((s for s in samples if s.by == "operator"), key=lambda s: s.stem)
