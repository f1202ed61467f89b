"""The learning loop end to end, with every real part: a model that never saw one defect kind
runs on a line that makes it; the station keeps samples; pull; labelling through the tool's own
HTTP API; retraining from the first run; the new model in shadow disagrees where it sees the new
kind; promote; now the station raises it.

Tiny on purpose (40x40 images, a 32 px CNN, a few epochs): the defects are a white square
(``error``) and a green one (``break``) on dark noise, which a small model learns in seconds.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
from label_helpers import request, start_server

pytest.importorskip("tensorflow")
pytestmark = pytest.mark.slow

from pi_inspect.edge.cli import main  # noqa: E402
from pi_inspect.edge.config import parse_config  # noqa: E402
from pi_inspect.edge.data.meanings import LabelMeaning, write_declaration  # noqa: E402
from pi_inspect.edge.data.table import read_table, write_table  # noqa: E402
from pi_inspect.edge.deploy import CURRENT, deploy_local  # noqa: E402
from pi_inspect.edge.promote import promote  # noqa: E402
from pi_inspect.edge.pull import pull  # noqa: E402

MEANINGS = {
    "good": LabelMeaning("never", "a clean part"),
    "error": LabelMeaning("present", "a white mark"),
    "break": LabelMeaning("present", "a green mark"),
}


def part(kind: str, rng: np.random.Generator) -> np.ndarray:
    img = rng.integers(0, 60, (40, 40, 3), dtype=np.uint8)
    if kind == "error":
        img[4:16, 4:16] = 255
    elif kind == "break":
        img[24:36, 24:36, 1] = 255
    return img


def kind_of(bgr: np.ndarray) -> str:
    """What a frame shows, read off its pixels (the labeller's eye)."""
    if bgr[4:16, 4:16].mean() > 150:
        return "error"
    if bgr[24:36, 24:36, 1].mean() > 150 and bgr[24:36, 24:36, 2].mean() < 100:
        return "break"
    return "good"


def data_set(root: Path, kinds: list[str], labels: list[str], rng) -> Path:
    (root / "images").mkdir(parents=True)
    names, rows = [], []
    for i, kind in enumerate(kinds):
        cv2.imwrite(str(root / "images" / f"{i:04d}.png"), part(kind, rng))
        names.append(f"images/{i:04d}.png")
        rows.append([label == kind for label in labels])
    write_table(root / "labels.csv", names, labels, rows)
    write_declaration(root, {label: MEANINGS[label] for label in labels})
    return root


def line_video(path: Path, rng) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 15, (40, 40))
    for kind in ["good"] * 10 + (["good"] * 6 + ["break"] * 6 + ["good"] * 6 + ["error"] * 6) * 4:
        writer.write(part(kind, rng))
    writer.release()
    return path


def train_and_convert(data: Path, run: Path, bundle: Path, *extra: str) -> Path:
    args = ["--size", "32", "--epochs", "12", "--batch-size", "16", "--augment", "none"]
    assert main(["train", "--data", str(data), "--out", str(run), *args, *extra]) == 0
    assert main(["convert", str(run), "--out", str(bundle), "--no-reference"]) == 0
    return bundle


def station(tmp_path: Path, models: Path, video: Path, **sections):
    return parse_config({
        "state_dir": str(tmp_path / "state"),
        "source": {"uri": str(video)},
        "model": {"bundle": str(models / CURRENT), "num_threads": 1},
        "gpio": {"enabled": False},
        "stdout": {"enabled": False},
        **sections,
    })


def run_station(config, make_daemon, out):
    from pi_inspect.edge.daemon import load_from_config

    daemon = make_daemon(config, classifier_loader=load_from_config, pin_factory=None, outputs=[out])
    return daemon.run(threading.Event())


def test_a_new_defect_kind_goes_from_the_line_to_a_promoted_model_that_raises_it(
    tmp_path: Path, make_daemon
):
    from daemon_helpers import RecordingOutput

    rng = np.random.default_rng(7)
    kinds = ["good"] * 50 + ["error"] * 50
    v1_data = data_set(tmp_path / "v1-data", kinds, ["good", "error"], rng)
    v1 = train_and_convert(v1_data, tmp_path / "v1", tmp_path / "v1-bundle")
    models = tmp_path / "models"
    models.mkdir()
    deploy_local(v1, models)
    video = line_video(tmp_path / "line.avi", rng)

    # 1. v1 on the line: it raises errors, never breaks; the station keeps near-threshold and
    #    random frames within its quotas (a share of 1: every frame, so the test is repeatable)
    quota = {"per_minute": 200, "per_hour": 200, "per_day": 200}
    collect = {"near": {"enabled": True, "band": 0.45, **quota}, "random": {"enabled": True, "share": 1.0, **quota}}
    out = RecordingOutput()
    run_station(station(tmp_path, models, video, collect=collect), make_daemon, out)
    assert "error" in {e.label for e in out.events if e.kind == "start"}  # v1 knows no break
    snapshots = tmp_path / "state" / "snapshots"
    kept = [json.loads(p.read_text()) for p in snapshots.glob("*.json")]
    samples = sum("sample" in k for k in kept)
    assert 90 < samples < 106 and samples + sum("event" in k for k in kept) == 106  # none twice

    # 2. pull, then label through the tool's HTTP API, as the page does
    pulled = pull(str(snapshots), tmp_path / "line-3")
    assert pulled.added and not list(snapshots.iterdir())
    labels = ("good", "error", "break")
    server = start_server(tmp_path / "line-3" / "images", tmp_path / "labelled", labels=labels)
    try:
        count = request(server, "GET", "/api/state")[1]["count"]
        for index in range(count):
            status, body = request(server, "GET", f"/api/image/{index}.png")
            shown = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
            kind = kind_of(shown)
            values = {label: label == kind for label in labels}
            status, _ = request(server, "POST", "/api/save", {"index": index, "values": values})
            assert status == 200
    finally:
        server.close()
    labelled = (tmp_path / "labelled" / "labels.csv").read_text().splitlines()
    assert len(labelled) == count + 1  # every pulled frame, saved through the API

    # 3. retrain from v1 on its data plus the labelled frames (break is a new label)
    old_table, new_table = read_table(v1_data / "labels.csv"), read_table(tmp_path / "labelled" / "labels.csv")
    assert new_table.labels == labels and int(new_table.y[:, 2].sum()) >= 8  # breaks were kept
    both = tmp_path / "v2-data"
    both.mkdir()
    names = [str(p) for p in (*old_table.paths, *new_table.paths)]
    rows = [[*y, 0.0] for y in old_table.y] + [list(y) for y in new_table.y]
    write_table(both / "labels.csv", names, labels, rows)
    write_declaration(both, MEANINGS)
    v2 = train_and_convert(both, tmp_path / "v2", tmp_path / "v2-bundle", "--init", str(tmp_path / "v1"))
    init = json.loads((tmp_path / "v2" / "run.json").read_text())["init"]
    assert init["new_labels"] == ["break"]

    # 4. v2 in shadow: it disagrees where it sees breaks; the line still sees only v1
    out = RecordingOutput()
    shadowing = station(tmp_path, models, video, shadow={"bundle": str(v2), "min_frames": 50, "min_agreement": 0.5})
    run_station(shadowing, make_daemon, out)
    record = out.stats[-1].extra["shadow"]
    assert record["flips"]["break"]["raised"] >= 10
    assert "break" not in {e.label for e in out.events if e.kind == "start"}

    # 5. promote: now the station raises breaks
    promoted = promote(shadowing)
    assert (models / CURRENT).resolve().name == promoted.current
    out = RecordingOutput()
    run_station(station(tmp_path, models, video), make_daemon, out)
    assert {e.label for e in out.events if e.kind == "start"} == {"error", "break"}
