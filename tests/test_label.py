"""The labelling tool's server: saving, resuming, and refusing every malformed request."""

from __future__ import annotations

import json
import socket
import threading
import time

import cv2
import numpy as np
import pytest
from label_helpers import (
    files_under,
    make_pulled,
    make_video,
    raw_request,
    request,
    start_server,
    uncertainty_order,
)

from pi_inspect.edge.cli import main
from pi_inspect.edge.data.frames import extract_frames
from pi_inspect.edge.data.table import SEED_LABELS, read_dataset, read_table
from pi_inspect.edge.errors import ConfigError, DataError
from pi_inspect.edge.label.server import MAX_BODY
from pi_inspect.edge.label.session import assign_keys
from pi_inspect.edge.label.sources import open_frames
from pi_inspect.edge.label.store import inside

GOOD_SAVE = {"index": 1, "values": {"good": True, "error": False, "break": False, "length": True}}


@pytest.fixture
def served(tmp_path):
    video = make_video(tmp_path / "seam.mp4")
    out = tmp_path / "out"
    server = start_server(video, out)
    yield server, out, tmp_path
    server.close()


# --- saving and resuming ------------------------------------------------------------------


def test_save_writes_the_frame_png_and_its_seed_row(served):
    server, out, tmp_path = served
    status, reply = request(server, "POST", "/api/save", GOOD_SAVE)
    assert status == 200 and reply["name"] == "seam_00001.png" and reply["saved_count"] == 1
    assert (out / "labels.csv").read_text().splitlines() == [
        "name,good,error,break,length,source",
        "seam_00001.png,True,False,False,True,seam",
    ]
    frames = open_frames(tmp_path / "seam.mp4")
    expected = frames.read(1)
    frames.close()
    np.testing.assert_array_equal(cv2.imread(str(out / "seam_00001.png")), expected)
    ds = read_dataset(out)
    assert ds.paths == [(out / "seam_00001.png").absolute()] and ds.labels == SEED_LABELS
    np.testing.assert_array_equal(ds.y, [[1, 0, 0, 1]])


def test_saving_a_frame_again_replaces_its_row(served):
    server, out, _ = served
    request(server, "POST", "/api/save", GOOD_SAVE)
    again = {"index": 1, "values": {"good": False, "error": True, "break": True, "length": True}}
    assert request(server, "POST", "/api/save", again)[0] == 200
    ds = read_table(out / "labels.csv")
    assert len(ds) == 1
    np.testing.assert_array_equal(ds.y, [[0, 1, 1, 1]])
    status, info = request(server, "GET", "/api/frame/1")
    assert status == 200 and info["saved"] and info["values"]["error"] is True


def test_reopening_resumes_after_the_last_saved_frame_and_carries_nothing_over(tmp_path):
    video = make_video(tmp_path / "seam.mp4")
    out = tmp_path / "out"
    with start_server(video, out) as server:
        for index in (0, 2):
            body = {"index": index, "values": dict(GOOD_SAVE["values"], error=index == 2)}
            assert request(server, "POST", "/api/save", body)[0] == 200
    with start_server(video, out) as server:
        status, state = request(server, "GET", "/api/state")
    assert status == 200
    assert state["start"] == 3 and state["saved"] == 2 and state["count"] == 6
    assert "carry" not in state
    with start_server(video, out) as server:
        status, info = request(server, "GET", "/api/frame/3")
    assert status == 200 and info["saved"] is False and info["values"] is None
    assert info["suggested"] == "" and info["suggestion"] is None  # a video has no samples.csv


def test_video_frames_are_named_as_pi_inspect_frames_names_them(tmp_path):
    video = make_video(tmp_path / "seam.mp4")
    written = extract_frames(video, tmp_path / "frames")
    frames = open_frames(video)
    try:
        assert [frames.name(i) for i in range(len(frames))] == [p.name for p in written]
    finally:
        frames.close()
    assert written[3].name == "seam_00003.png"


def test_frame_info_and_image_are_served(served):
    server, _, _ = served
    request(server, "POST", "/api/save", GOOD_SAVE)
    status, info = request(server, "GET", "/api/frame/5")
    assert status == 200 and info == {
        "index": 5,
        "name": "seam_00005.png",
        "saved": False,
        "values": None,
        "suggested": "",
        "suggestion": None,
        "saved_count": 1,
        "strip_start": 0,
        "strip": [False, True, False, False, False, False],
    }
    status, png = request(server, "GET", "/api/image/5.png")
    assert status == 200 and png[:8] == b"\x89PNG\r\n\x1a\n"
    assert request(server, "GET", "/api/frame/6")[0] == 404


def test_server_listens_on_loopback_only(served):
    server, _, _ = served
    assert server.server_address[0] == "127.0.0.1"
    assert server.url.startswith("http://127.0.0.1:")


def test_multiclass_relabel_moves_the_frame_between_class_folders(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(3):
        cv2.imwrite(str(folder / f"cam_{i}.jpg"), np.full((10, 10, 3), 50 * i, np.uint8))
    out = tmp_path / "out"
    with start_server(folder, out, mode="multiclass", labels=("bad", "ok")) as server:
        ok = {"index": 0, "values": {"bad": False, "ok": True}}
        bad = {"index": 0, "values": {"bad": True, "ok": False}}
        two = {"index": 1, "values": {"bad": True, "ok": True}}
        assert request(server, "POST", "/api/save", ok)[0] == 200
        assert request(server, "POST", "/api/save", bad)[0] == 200
        assert request(server, "POST", "/api/save", two)[0] == 400
    assert sorted(p.relative_to(out).as_posix() for p in files_under(out)) == ["bad/cam_0.png"]
    ds = read_dataset(out)
    assert ds.task == "multiclass" and ds.labels == ("bad", "ok")
    np.testing.assert_array_equal(ds.y, [[1, 0]])


# --- refusing requests --------------------------------------------------------------------

TRAVERSAL = [
    "/../../../../etc/passwd",
    "/..%2f..%2f..%2fetc%2fpasswd",
    "/%2e%2e/%2e%2e/etc/passwd",
    "/api/image/..%2F..%2Flabels.csv",
    "/api/image/%2e%2e%2f1.png",
    "/api/frame/1/../../../x",
    "/api/image/1.png/../../labels.csv",
    "//etc/passwd",
    "/etc/passwd",
    "/api/frame/-1",
    "/api/frame/1e3",
    "/api/frame/99999999999",
    "/api/image/1.png?x=../../y",
    "/labels.csv",
    "/seam_00001.png",
]


@pytest.mark.parametrize("path", TRAVERSAL)
def test_path_traversal_and_unknown_paths_are_refused(served, path):
    server, out, tmp_path = served
    request(server, "POST", "/api/save", GOOD_SAVE)
    before = files_under(tmp_path)
    status, reply = request(server, "GET", path)
    assert status in (400, 404)
    assert isinstance(reply, dict) and "error" in reply  # never a file's contents
    assert files_under(tmp_path) == before


@pytest.mark.parametrize(
    "raw",
    [
        b"GET /api/image/1.png\x00../../x HTTP/1.1\r\nHost: {host}\r\n\r\n",
        b"GET /api/frame/%00 HTTP/1.1\r\nHost: {host}\r\n\r\n",
        b"GET http://{host}/../../etc/passwd HTTP/1.1\r\nHost: {host}\r\n\r\n",
        b"GET \\..\\..\\etc\\passwd HTTP/1.1\r\nHost: {host}\r\n\r\n",
        b"POST /api/../../out/x.png HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\n\r\n",
    ],
)
def test_nul_bytes_absolute_and_backslash_paths_are_refused(served, raw):
    server, _, tmp_path = served
    before = files_under(tmp_path)
    host = f"127.0.0.1:{server.server_address[1]}".encode()
    assert raw_request(server, raw.replace(b"{host}", host)) in (400, 404)
    assert files_under(tmp_path) == before


@pytest.mark.parametrize(
    "body",
    [
        {"index": 1},
        {"values": GOOD_SAVE["values"]},
        {**GOOD_SAVE, "path": "../../evil.png"},
        {**GOOD_SAVE, "name": "/tmp/evil.png"},
        {"index": 6, "values": GOOD_SAVE["values"]},
        {"index": -1, "values": GOOD_SAVE["values"]},
        {"index": True, "values": GOOD_SAVE["values"]},
        {"index": 1.0, "values": GOOD_SAVE["values"]},
        {"index": "1", "values": GOOD_SAVE["values"]},
        {"index": 1, "values": {**GOOD_SAVE["values"], "../../x": True}},
        {"index": 1, "values": {"good": True, "error": False, "break": False}},
        {"index": 1, "values": {**GOOD_SAVE["values"], "good": "true"}},
        {"index": 1, "values": {**GOOD_SAVE["values"], "good": 1}},
        {"index": 1, "values": [True, False, False, True]},
        [1, 2],
        "save",
        b"null",
    ],
)
def test_malformed_save_bodies_are_refused_and_write_nothing(served, body):
    server, out, tmp_path = served
    status, reply = request(server, "POST", "/api/save", body)
    assert status in (400, 404) and "error" in reply
    assert files_under(tmp_path) == {tmp_path / "seam.mp4"}


@pytest.mark.parametrize(
    ("body", "headers", "expected"),
    [
        (b"{not json", {}, 400),
        (b'{"index": 1, "index": 2, "values": {}}', {}, 400),
        (b'{"index": NaN, "values": {}}', {}, 400),
        (b"\xff\xfe", {}, 400),
        (b"x" * (MAX_BODY + 1), {}, 413),
        (json.dumps(GOOD_SAVE).encode(), {"Content-Type": "text/plain"}, 415),
        (json.dumps(GOOD_SAVE).encode(), {"Host": "evil.example:80"}, 403),
        (json.dumps(GOOD_SAVE).encode(), {"Origin": "http://evil.example"}, 403),
    ],
)
def test_malformed_or_foreign_requests_are_refused(served, body, headers, expected):
    server, _, tmp_path = served
    status, reply = request(server, "POST", "/api/save", body, headers)
    assert status == expected and "error" in reply
    assert files_under(tmp_path) == {tmp_path / "seam.mp4"}


def test_body_without_length_or_announcing_a_huge_one_is_refused_unread(served):
    server, _, _ = served
    host = f"127.0.0.1:{server.server_address[1]}"
    no_length = f"POST /api/save HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\r\n"
    assert raw_request(server, no_length.encode()) == 411
    huge = (
        f"POST /api/save HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: 10000000000\r\n\r\n{{}}"
    )
    assert raw_request(server, huge.encode()) == 413
    chunked = (
        f"POST /api/save HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"
    )
    assert raw_request(server, chunked.encode()) == 411


def test_other_methods_are_refused(served):
    server, _, _ = served
    for method in ("PUT", "DELETE", "OPTIONS"):
        assert request(server, method, "/api/save", GOOD_SAVE)[0] == 405


def test_file_names_are_confined_to_the_output_folder(tmp_path):
    for name in ("../x.png", "/etc/x.png", "a/b.png", ".hidden.png", "x\0.png", "x.txt"):
        with pytest.raises(DataError):
            inside(tmp_path, name)
    assert inside(tmp_path, "v_1.png") == tmp_path / "v_1.png"


# --- keys and command line ----------------------------------------------------------------


def test_default_keys_are_the_seeds_first_letters():
    assert assign_keys(SEED_LABELS) == {"g": "good", "e": "error", "b": "break", "l": "length"}


def test_labels_clashing_with_navigation_keys_take_their_next_letter():
    assert assign_keys(("scratch", "stain", "nick")) == {"c": "scratch", "t": "stain", "i": "nick"}


@pytest.mark.parametrize("keys", ["g,e,b", "g,e,b,n", "g,e,b,a", "g,g,b,l", "ge,b,l,x"])
def test_bad_keys_are_a_config_error(keys):
    with pytest.raises(ConfigError):
        assign_keys(SEED_LABELS, keys)


def test_custom_keys_map_in_label_order():
    assert assign_keys(SEED_LABELS, "1234") == {
        "1": "good",
        "2": "error",
        "3": "break",
        "4": "length",
    }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_label_command_serves_until_quit(tmp_path, capsys):
    video = make_video(tmp_path / "seam.mp4")
    port = _free_port()
    argv = ["label", str(video), "--out", str(tmp_path / "out"), "--port", str(port)]
    result = {}
    thread = threading.Thread(target=lambda: result.update(code=main(argv)), daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline or not thread.is_alive():
                pytest.fail("label server did not start")
            time.sleep(0.05)

    class Target:
        server_address = ("127.0.0.1", port)

    assert request(Target, "POST", "/api/save", GOOD_SAVE)[0] == 200
    assert request(Target, "POST", "/api/quit", {})[0] == 200
    thread.join(timeout=10)
    assert result == {"code": 0}
    assert f"open http://127.0.0.1:{port}/" in capsys.readouterr().out
    assert len(read_table(tmp_path / "out" / "labels.csv")) == 1


def test_label_command_with_missing_source_is_one_line_error(tmp_path, capsys):
    assert main(["label", str(tmp_path / "none.mp4"), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err.strip()
    assert "no such video file" in err and "\n" not in err
    assert not (tmp_path / "o").exists()


def test_label_command_refuses_a_table_with_other_labels(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "labels.csv").write_text("name,ok\na.png,True\n")
    video = make_video(tmp_path / "seam.mp4")
    assert main(["label", str(video), "--out", str(out), "--port", "0"]) == 1
    assert "has labels ['ok']" in capsys.readouterr().err


@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
def test_label_command_stops_cleanly_on_ctrl_c_or_sigterm(tmp_path, signame):
    """The signal asks the server to stop, as q does: exit 0 and the closing line."""
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    video = make_video(tmp_path / "seam.mp4")
    root = Path(__file__).resolve().parents[1]
    argv = [sys.executable, "-m", "pi_inspect.edge.cli", "label", str(video), "--out", str(tmp_path / "out"), "--port", "0"]
    env = {**os.environ, "PYTHONPATH": str(root)}
    proc = subprocess.Popen(argv, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        for line in proc.stdout:
            if line.startswith("open http://127.0.0.1:"):
                break
    finally:
        proc.send_signal(getattr(signal, signame))
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0 and "stopped; labels in" in out, out


# --- pulled samples: suggestions, uncertainty order, progress ------------------------------


def test_pulled_samples_open_most_uncertain_first_with_their_suggestions(tmp_path):
    samples = make_pulled(tmp_path / "line-3")
    order = uncertainty_order(samples)
    out = tmp_path / "out"
    with start_server(tmp_path / "line-3" / "images", out) as server:
        status, state = request(server, "GET", "/api/state")
        assert status == 200 and state["start"] == 0 and state["count"] == 30
        assert state["saved"] == 0
        for index, sample in enumerate(order):
            status, info = request(server, "GET", f"/api/frame/{index}")
            assert status == 200 and info["name"] == f"{sample.stem}.png"
            assert info["suggested"] == sample.by and info["suggestion"] == sample.values
            assert info["saved"] is False and info["values"] is None
        status, info = request(server, "GET", "/api/frame/25")
        assert info["strip_start"] == 5 and len(info["strip"]) == 25  # frames 5..29
        # the image shown and the frame saved under index i are the sample named for i
        body = {"index": 1, "values": order[1].values}
        status, reply = request(server, "POST", "/api/save", body)
        assert status == 200 and reply["name"] == f"{order[1].stem}.png"
        status, png = request(server, "GET", "/api/image/1.png")
        shown = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
        source = cv2.imread(str(tmp_path / "line-3" / "images" / f"{order[1].stem}.jpg"))
        np.testing.assert_array_equal(shown, source)
        np.testing.assert_array_equal(cv2.imread(str(out / f"{order[1].stem}.png")), source)
        status, info = request(server, "GET", "/api/frame/0")
        assert info["saved_count"] == 1 and info["strip"][:3] == [False, True, False]
    rows = read_table(out / "labels.csv")
    assert [p.name for p in rows.paths] == [f"{order[1].stem}.png"]
    np.testing.assert_array_equal(rows.y, [[float(order[1].values[lb]) for lb in SEED_LABELS]])


def test_multiclass_offers_only_suggestions_naming_one_class(tmp_path):
    samples = make_pulled(tmp_path / "line-3", count=6, said={1: "", 4: "error"})
    labels = ("error", "break")  # a model may say both, or neither
    with start_server(tmp_path / "line-3" / "images", tmp_path / "out", "multiclass", labels) as s:
        offered = {}
        for index in range(6):
            info = request(s, "GET", f"/api/frame/{index}")[1]
            offered[info["name"]] = info["suggestion"]
    kinds = set()
    for sample in samples:
        wanted = {label: sample.values[label] for label in labels}
        kinds.add(sum(wanted.values()))
        assert offered[f"{sample.stem}.png"] == (wanted if sum(wanted.values()) == 1 else None)
    assert kinds == {0, 1, 2}


@pytest.mark.parametrize("source", ["pulled", "video"])
def test_ctrl_c_after_saves_leaves_a_valid_table_with_every_saved_row(tmp_path, source):
    """Every save is on disk when it is answered: Ctrl-C right after loses none of them."""
    import os
    import re
    import signal
    import subprocess
    import sys
    from pathlib import Path

    if source == "pulled":
        make_pulled(tmp_path / "line-3", count=8, said={2: "break"})
        path = tmp_path / "line-3" / "images"
    else:
        path = make_video(tmp_path / "seam.mp4")
    out = tmp_path / "out"
    root = Path(__file__).resolve().parents[1]
    argv = [sys.executable, "-m", "pi_inspect.edge.cli", "label", str(path), "--out", str(out),
            "--port", "0"]
    env = {**os.environ, "PYTHONPATH": str(root)}
    proc = subprocess.Popen(argv, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    saved = {}
    try:
        for line in proc.stdout:
            if match := re.match(r"open http://127\.0\.0\.1:(\d+)/", line):
                break
        else:
            pytest.fail("label did not start")

        class Target:
            server_address = ("127.0.0.1", int(match.group(1)))

        for index in (0, 1, 3, 4, 1):  # frame 1 twice: its second save replaces the first
            info = request(Target, "GET", f"/api/frame/{index}")[1]
            values = info["suggestion"] or dict.fromkeys(SEED_LABELS, False)
            values = dict(values, length=not values["length"]) if index == 1 else values
            if index == 1 and info["saved"]:
                values = dict(info["values"], error=not info["values"]["error"])
            status, reply = request(Target, "POST", "/api/save", {"index": index, "values": values})
            assert status == 200
            saved[reply["name"]] = [values[label] for label in SEED_LABELS]
    finally:
        proc.send_signal(signal.SIGINT)
        text, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0 and "stopped; labels in" in text, text
    rows = read_table(out / "labels.csv")
    assert {p.name: [bool(v) for v in y] for p, y in zip(rows.paths, rows.y, strict=True)} == saved
    assert len(saved) == 4 and all((out / name).is_file() for name in saved)
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
