"""JPEG-coded sources on real MJPEG data: an MJPG AVI written by OpenCV, a JPEG folder and an HTTP
MJPEG stream served on loopback by the test; each decodes at a reduced DCT scale for the model,
in full only for ``frame.image``, and applies the station's region of interest and rotation."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np
import pytest

from pi_inspect.edge.config import SourceConfig
from pi_inspect.edge.errors import SourceError
from pi_inspect.edge.jpeg import JpegPixels, jpeg_size, pick_scale
from pi_inspect.edge.preprocess import prepare
from pi_inspect.edge.sources import FolderSource, MjpegStreamSource, OpenCVSource, make_source
from pi_inspect.edge.view import View

SIZE = (640, 480)


def halves(i: int = 0) -> np.ndarray:
    """Left half dark, right half bright (and a moving square): a frame whose region shows."""
    img = np.full((SIZE[1], SIZE[0], 3), 30, np.uint8)
    img[:, SIZE[0] // 2 :] = 220
    cv2.rectangle(img, (40 + 4 * i, 40), (80 + 4 * i, 80), (0, 0, 255), -1)
    return img


def jpeg(img: np.ndarray) -> bytes:
    return cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()


def write_mjpg(path: Path, frames: int = 6) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, SIZE)
    for i in range(frames):
        writer.write(halves(i))
    writer.release()
    return path


def read_all(source) -> list:
    out = []
    source.open()
    try:
        while (frame := source.read()) is not None:
            out.append(frame)
    finally:
        source.close()
    return out


def test_jpeg_size_reads_the_start_of_frame_header_and_rejects_other_data():
    assert jpeg_size(jpeg(halves())) == SIZE
    assert jpeg_size(cv2.imencode(".png", halves())[1].tobytes()) is None
    assert jpeg_size(b"\xff\xd8\xff") is None


def test_pick_scale_is_the_smallest_decode_that_still_covers_the_need():
    assert pick_scale((640, 480), (96, 96)) == 4  # 160x120
    assert pick_scale((640, 480), (60, 60)) == 8  # 80x60
    assert pick_scale((640, 480), (200, 96)) == 2
    assert pick_scale((640, 480), (400, 96)) == 1


def test_mjpg_avi_delivers_compressed_frames_decoded_at_a_quarter_for_a_96px_model(tmp_path):
    source = OpenCVSource(str(write_mjpg(tmp_path / "m.avi")), live=False, raw_jpeg=True)
    frames = read_all(source)
    assert source.raw and len(frames) == 6
    frame = frames[3]
    assert isinstance(frame.pixels, JpegPixels)
    reduced = frame.prepare((96, 96))
    assert frame.pixels.scale == 4
    full = prepare(frame.image, (96, 96))  # the full decode, as the naive loop does it
    assert frame.image.shape == (480, 640, 3)
    assert np.abs(reduced.astype(int) - full.astype(int)).mean() < 3.0


def test_mjpg_avi_loops_and_keeps_counting(tmp_path):
    source = OpenCVSource(str(write_mjpg(tmp_path / "m.avi", 3)), live=False, loop=True)
    source.raw_jpeg = True
    source.open()
    indices = [source.read().index for _ in range(7)]
    source.close()
    assert indices == list(range(7))


def test_h264_file_keeps_the_decoded_path(tmp_path):
    path = tmp_path / "v.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, SIZE)
    for i in range(3):
        writer.write(halves(i))
    writer.release()
    source = OpenCVSource(str(path), live=False, raw_jpeg=True)
    frames = read_all(source)
    assert not source.raw and len(frames) == 3
    assert not isinstance(frames[0].pixels, JpegPixels)


def test_jpeg_folder_stays_compressed_and_skips_a_corrupt_file(tmp_path, caplog):
    for i in range(3):
        (tmp_path / f"f{i}.jpg").write_bytes(jpeg(halves(i)))
    (tmp_path / "f1b.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    cv2.imwrite(str(tmp_path / "f3.png"), halves(3))
    with caplog.at_level(logging.WARNING, logger="pi_inspect.edge.sources"):
        frames = read_all(FolderSource(tmp_path))
    assert len(frames) == 4
    assert [isinstance(f.pixels, JpegPixels) for f in frames] == [True, True, True, False]
    assert "f1b.jpg" in caplog.text
    rgb = frames[0].prepare((64, 48))
    assert frames[0].pixels.scale == 8 and rgb.shape == (48, 64, 3)


def test_region_and_rotation_apply_to_the_model_input_and_the_image(tmp_path):
    """Right half only: all bright. Rotated 90 degrees clockwise: dark left becomes top."""
    (tmp_path / "a.jpg").write_bytes(jpeg(halves()))
    right = View(roi=(320, 0, 320, 480))
    frame = read_all(FolderSource(tmp_path, view=right))[0]
    assert frame.prepare((32, 32)).mean() > 200 and frame.image.shape == (480, 320, 3)
    turned = read_all(FolderSource(tmp_path, view=View(rotate=90)))[0]
    rgb = turned.prepare((48, 64))
    assert rgb.shape == (64, 48, 3)
    assert rgb[:24].mean() < 60 and rgb[40:].mean() > 200
    assert turned.image.shape == (640, 480, 3)


def test_a_small_region_decodes_at_a_larger_scale_to_keep_model_detail(tmp_path):
    (tmp_path / "a.jpg").write_bytes(jpeg(halves()))
    frame = read_all(FolderSource(tmp_path, view=View(roi=(0.0, 0.0, 0.25, 0.25))))[0]
    frame.prepare((96, 96))  # a 160x120 region needs the whole frame at 640x480 / 1
    assert frame.pixels.scale == 1
    frame = read_all(FolderSource(tmp_path, view=View(roi=(0.0, 0.0, 0.5, 0.5))))[0]
    frame.prepare((96, 96))  # 320x240 region at 1/2 = 160x120 >= 96
    assert frame.pixels.scale == 2


def test_region_and_rotation_on_a_decoded_video_file(tmp_path):
    path = tmp_path / "v.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, SIZE)
    writer.write(halves())
    writer.release()
    config = SourceConfig(kind="file", uri=str(path), roi=[0.0, 0.0, 0.5, 1.0], rotate=180)
    frame = read_all(make_source(config))[0]
    assert frame.image.shape == (480, 320, 3) and frame.prepare((16, 16)).mean() < 70
    # rotated 180: the red square at the top left is now at the bottom right
    assert frame.image[-80:-40, -80:-40, 2].mean() > 200


class _MjpegHandler(BaseHTTPRequestHandler):
    frames: list[bytes] = []
    with_length = True

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.send_response(200)
        self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        self.end_headers()
        try:
            for data in self.frames:
                self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\n")
                if self.with_length:
                    self.wfile.write(f"Content-Length: {len(data)}\r\n".encode())
                self.wfile.write(b"\r\n" + data + b"\r\n")
            self.wfile.write(b"--frame--\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, *args) -> None: ...


@pytest.fixture(params=[True, False], ids=["content-length", "boundary-only"])
def mjpeg_server(request) -> Iterator[str]:
    handler = type("Handler", (_MjpegHandler,), {})
    handler.frames = [jpeg(halves(i)) for i in range(4)]
    handler.with_length = request.param
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/stream.mjpg"
    server.shutdown()
    server.server_close()


def test_http_mjpeg_stream_gives_every_part_then_reports_the_end(mjpeg_server):
    source = make_source(
        SourceConfig(kind="stream", uri=mjpeg_server, roi=[320, 0, 320, 480], rotate=270)
    )
    assert isinstance(source, MjpegStreamSource)
    source.open()
    frames = [source.read() for _ in range(4)]
    with pytest.raises(SourceError, match="ended"):
        source.read()
    source.close()
    assert [f.index for f in frames] == [0, 1, 2, 3]
    assert all(isinstance(f.pixels, JpegPixels) for f in frames)
    assert frames[2].prepare((32, 32)).mean() > 200 and frames[2].pixels.scale == 8
    assert frames[2].image.shape == (320, 480, 3)
    # byte-exact parts: the decoded frame matches the JPEG that was served
    served = cv2.imdecode(np.frombuffer(jpeg(halves(1)), np.uint8), cv2.IMREAD_COLOR)
    assert np.array_equal(frames[1].pixels.full(), served)


def test_stream_that_cannot_be_reached_raises_source_error():
    with pytest.raises(SourceError, match="cannot open"):
        MjpegStreamSource("http://127.0.0.1:9/none.mjpg", timeout_s=1.0).open()


def test_region_and_rotation_on_compressed_mjpg_avi_frames(tmp_path):
    path = write_mjpg(tmp_path / "m.avi", 2)
    config = SourceConfig(kind="file", uri=str(path), roi=[0.5, 0.0, 0.5, 1.0], rotate=270)
    source = make_source(config)
    frame = read_all(source)[0]
    assert source.raw and isinstance(frame.pixels, JpegPixels)
    assert frame.prepare((24, 32)).mean() > 200 and frame.pixels.scale == 8
    assert frame.image.shape == (320, 480, 3)
