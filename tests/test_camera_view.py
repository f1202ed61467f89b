"""The station's view travels: frames are cut with the station config, the bundle records the view
it was trained on, and the daemon warns when the station looks at other pixels."""

from __future__ import annotations

import json
import logging
import shutil
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from pi_inspect.edge.bundle import default_bundle_dir
from pi_inspect.edge.cli import main
from pi_inspect.edge.config import parse_config
from pi_inspect.edge.daemon import Daemon
from pi_inspect.edge.view import View, same_view, trained_view, warn_if_view_differs


def halves(w: int = 64, h: int = 48) -> np.ndarray:
    img = np.full((h, w, 3), 30, np.uint8)
    img[:, w // 2 :] = 220
    return img


def station(tmp_path: Path, source: str) -> Path:
    path = tmp_path / "station.toml"
    path.write_text(f"[source]\n{source}\n")
    return path


def test_frames_command_cuts_frames_to_the_station_region(tmp_path):
    video = tmp_path / "v.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (64, 48))
    for _ in range(3):
        writer.write(halves())
    writer.release()
    config = station(tmp_path, "roi = [32, 0, 32, 48]\nrotate = 90")
    out = tmp_path / "frames"
    assert main(["frames", str(video), "--out", str(out), "--station-config", str(config)]) == 0
    first = cv2.imread(str(sorted(out.glob("v_*.png"))[0]))
    assert first.shape == (32, 48, 3) and first.mean() > 200


def test_view_of_a_station_config_round_trips_through_the_manifest_form():
    source = parse_config({"source": {"roi": [0.25, 0.0, 0.5, 1.0], "rotate": 270}}).source
    view = View.of(source)
    again = View.from_dict(json.loads(json.dumps(view.to_dict())))
    assert same_view(view, again) and not same_view(view, View())


@pytest.fixture
def bundle_with_view(tmp_path) -> Path:
    bundle = tmp_path / "bundle"
    shutil.copytree(default_bundle_dir(), bundle)
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["view"] = {"roi": [0.0, 0.0, 0.5, 1.0], "rotate": 0, "hflip": False, "vflip": False}
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    return bundle


def run_daemon(bundle: Path, folder: Path, source: dict) -> None:
    config = parse_config(
        {
            "source": {"kind": "folder", "uri": str(folder), **source},
            "model": {"bundle": str(bundle)},
            "gpio": {"enabled": False},
            "snapshots": {"enabled": False},
            "stdout": {"enabled": False},
        }
    )
    Daemon(config, outputs=[]).run(threading.Event())


@pytest.mark.parametrize(
    ("source", "warned"),
    [({}, True), ({"roi": [0.0, 0.0, 0.5, 1.0]}, False), ({"roi": [0.0, 0.0, 0.5, 1.0],
                                                          "rotate": 180}, True)],
    ids=["whole-frame", "same-region", "rotated"],
)
def test_daemon_warns_when_the_station_view_differs_from_the_bundles(
    bundle_with_view, tmp_path, caplog, source, warned
):
    folder = tmp_path / "images"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.jpg"), halves(192, 96))
    with caplog.at_level(logging.WARNING, logger="pi_inspect.edge.view"):
        run_daemon(bundle_with_view, folder, source)
    assert ("differs from the one the model was trained on" in caplog.text) == warned


def test_bundle_without_a_recorded_view_is_not_compared():
    class Bare:
        manifest = type("M", (), {"raw": {}})()

    assert trained_view(Bare()) is None
    assert warn_if_view_differs(Bare(), parse_config({"source": {"rotate": 90}}).source) is None


def test_a_region_outside_the_frame_is_a_camera_fault_not_a_crash(tmp_path):
    from daemon_helpers import wait_until

    from pi_inspect.edge.pipeline import CaptureWorker, FrameQueue, Preparer
    from pi_inspect.edge.sources import FolderSource

    cv2.imwrite(str(tmp_path / "a.jpg"), halves())
    view = View(roi=(500, 400, 64, 64))  # the images are 64x48

    preparer = Preparer()
    preparer.set_size((16, 16))  # the region is cut in the capture thread
    worker = CaptureWorker(
        lambda: FolderSource(tmp_path, view=view), FrameQueue(2, drop_oldest=False),
        preparer=preparer, backoff_min_s=0.05, backoff_max_s=0.05,
    )
    worker.start()
    try:
        assert wait_until(lambda: worker.fault is not None, timeout=10)
    finally:
        worker.stop()
    assert "lies outside the 64x48 frame" in worker.fault and not worker.online


def test_label_frames_are_cut_to_the_station_view(tmp_path):
    from pi_inspect.edge.label.sources import ViewedFrames, open_frames

    cv2.imwrite(str(tmp_path / "a.png"), halves())
    frames = ViewedFrames(open_frames(tmp_path), View(roi=(32, 0, 32, 48), rotate=180))
    image = frames.read(0)
    assert len(frames) == 1 and image.shape == (48, 32, 3) and image.mean() > 200
    frames.close()
