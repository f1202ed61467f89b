"""What the operator may do from the page: the daemon's commands, and keeping a wrong verdict.

Commands are the station's one vocabulary (``pi_inspect.edge.verbs``), validated by the same
code as MQTT's ``cmd/<verb>``, and go to the daemon through the one receiver its dispatcher
handed the console. A threshold change says plainly that it does
not last: the daemon keeps it until it restarts or reloads its config.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pi_inspect.edge.console.output import ConsoleOutput
from pi_inspect.edge.console.review import ReviewRefused, ReviewStore
from pi_inspect.edge.outputs import Reply
from pi_inspect.edge.verbs import OPERATOR_VERBS, answer

log = logging.getLogger(__name__)

VERBS = OPERATOR_VERBS  # what the operator may ask of the station from the page
THRESHOLDS_LAST = (
    "in force until the daemon restarts or reloads its config; to keep it, set "
    "model.thresholds in the config file"
)
MAX_NOTE = 200


class NotKept(ValueError):
    """Nothing to keep (the message says why)."""


class Actions:
    """Runs one action and always answers ``{"ok": bool, "error": str|None, ...}``."""

    def __init__(
        self,
        console: ConsoleOutput,
        review: ReviewStore,
        snapshot_dir: Path | None,
        snapshot_dirs: Mapping[str, Path | None] | None = None,
    ) -> None:
        self._console = console
        self._review = review
        self._snapshot_dir = snapshot_dir
        self._snapshot_dirs = dict(snapshot_dirs or {})  # per station, on a device of several

    def snapshots_of(self, station: str | None) -> Path | None:
        return self._snapshot_dirs.get(station or "", self._snapshot_dir)

    def run(self, verb: str, body: bytes, station: str | None = None) -> dict[str, Any]:
        if verb not in VERBS:
            return {"ok": False, "error": f"unknown action; known: {', '.join(VERBS)}"}
        receiver = self._console.receiver
        if receiver is None:
            return {"ok": False, "error": "the daemon is not connected yet"}
        labels = self._console.labels(station)
        reply = answer(verb, body, labels, _safe(receiver), station=station).to_dict()
        if verb == "thresholds" and reply["ok"]:
            reply["result"].update(persistent=False, lasts=THRESHOLDS_LAST)
        log.info("console action %s: %s", verb, "ok" if reply["ok"] else reply["error"])
        return reply

    def keep_for_review(self, body: bytes, station: str | None = None) -> dict[str, Any]:
        """``{}`` keeps the live frame; ``{"event_id": ...}`` an event's snapshot. An optional
        ``note`` (what the verdict should have been) goes with it."""
        try:
            request = json.loads(body.decode("utf-8") or "{}")
        except (ValueError, RecursionError):  # not UTF-8, not JSON, or nested too deeply
            return {"ok": False, "error": "body is not JSON"}
        if not isinstance(request, dict) or set(request) - {"event_id", "note"}:
            return {"ok": False, "error": 'expected {"event_id"?: str, "note"?: str}'}
        note = request.get("note")
        if note is not None and (not isinstance(note, str) or len(note) > MAX_NOTE):
            return {"ok": False, "error": f"note must be text of at most {MAX_NOTE} characters"}
        event_id = request.get("event_id")
        try:
            if event_id is None:
                item = self._keep_live(note, station)
            elif isinstance(event_id, str):
                item = self._keep_event(event_id, note)
            else:
                return {"ok": False, "error": "event_id must be text"}
        except (NotKept, ReviewRefused) as exc:
            log.debug("review item not kept: %s", exc)
            return {"ok": False, "error": str(exc)}
        except OSError as exc:
            log.warning("review item not kept: %s", exc)
            return {"ok": False, "error": f"cannot write the review folder: {exc.strerror or exc}"}
        log.info("kept %s for review", item)
        return {"ok": True, "error": None, "id": item}

    def _keep_live(self, note: str | None, station: str | None) -> str:
        import cv2

        frame = self._console.frame_tap.latest(station)
        if frame is None or frame.scores is None:
            raise NotKept("no inspected live frame yet: open the live view first")
        if frame.jpeg is not None:  # the camera's own JPEG: kept as it came
            jpeg_bytes = frame.jpeg
        else:
            ok, jpeg = cv2.imencode(".jpg", frame.image, [int(cv2.IMWRITE_JPEG_QUALITY), 95])
            if not ok:
                raise OSError("cannot encode the frame")
            jpeg_bytes = jpeg.tobytes()
        heat = None
        if frame.heat is not None:
            from pi_inspect.edge.snapshots import overlay

            ok, over = cv2.imencode(".jpg", overlay(frame.image, frame.heat))
            heat = over.tobytes() if ok else None
        state = self._console.overview(station)["state"] or {}
        meta = {
            "source": "live",
            "station": frame.station,
            "frame_index": frame.index,
            "captured_at": frame.timestamp,
            "scores": frame.scores,
            "heat_label": frame.heat_label,
            "note": note,
            **{k: state.get(k) for k in ("verdict", "active", "thresholds", "alarms", "model")},
        }
        return self._review.add(jpeg_bytes, heat, meta)

    def _keep_event(self, event_id: str, note: str | None) -> str:
        event = self._console.event(event_id)
        if event is None:
            raise NotKept("no such event (only recent events can be kept)")
        name = event.get("snapshot")
        folder = self.snapshots_of(event.get("station"))
        if not name or folder is None:
            raise NotKept("this event has no snapshot to keep")
        frame = (folder / name).read_bytes()
        stem = name[: -len(".jpg")]
        heat_path = folder / f"{stem}.heat.jpg"
        heat = heat_path.read_bytes() if heat_path.is_file() else None
        try:
            sidecar = json.loads((folder / f"{stem}.json").read_text())
        except (OSError, ValueError):
            sidecar = {}
        meta = {"source": "event", "event": event, "note": note, "snapshot": sidecar}
        return self._review.add(frame, heat, meta)


def _safe(receiver):
    """The receiver never raises by contract; a reply all the same if it does."""

    def receive(command):
        try:
            return receiver(command)
        except Exception as exc:  # the request thread answers, whatever happened
            log.warning("console command %s failed: %s", command.verb, exc)
            return Reply(command.verb, False, str(exc).splitlines()[0] if str(exc) else "failed")

    return receive
