"""A video file plays at its own frame rate (or a configured one); a kind that contradicts the
path says what it found."""

from __future__ import annotations

import pytest
from daemon_helpers import OK_BGR, write_video

from pi_inspect.edge.config import parse_config
from pi_inspect.edge.errors import SourceError
from pi_inspect.edge.sources import OpenCVSource, make_source


class FakeClock:
    """A monotonic clock that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def _play(source: OpenCVSource) -> int:
    source.open()
    n = 0
    while source.read() is not None:
        n += 1
    source.close()
    return n


def test_a_file_plays_at_its_own_frame_rate_when_realtime(tmp_path):
    video = write_video(tmp_path / "clip.avi", [OK_BGR] * 6, fps=20.0)
    clock = FakeClock()
    assert _play(OpenCVSource(video, live=False, realtime=True, clock=clock, sleep=clock.sleep)) == 6
    assert clock.now - 100.0 == pytest.approx(5 / 20.0)  # five gaps of 50 ms
    assert len(clock.slept) == 5


def test_a_configured_fps_sets_the_playback_rate_of_a_file(tmp_path):
    video = write_video(tmp_path / "clip.avi", [OK_BGR] * 6, fps=20.0)
    clock = FakeClock()
    _play(OpenCVSource(video, live=False, fps=10.0, clock=clock, sleep=clock.sleep))
    assert clock.now - 100.0 == pytest.approx(5 / 10.0)


def test_without_either_a_file_plays_as_fast_as_it_decodes(tmp_path):
    video = write_video(tmp_path / "clip.avi", [OK_BGR] * 6, fps=20.0)
    clock = FakeClock()
    assert _play(OpenCVSource(video, live=False, clock=clock, sleep=clock.sleep)) == 6
    assert clock.slept == []


def test_config_fps_and_realtime_reach_the_file_source(tmp_path):
    video = write_video(tmp_path / "clip.avi", [OK_BGR] * 3, fps=20.0)
    cfg = parse_config({"source": {"kind": "file", "uri": str(video), "fps": 5.0}})
    source = make_source(cfg.source)
    assert source._pacer is not None and source._pacer.period == pytest.approx(0.2)
    cfg = parse_config({"source": {"kind": "file", "uri": str(video), "realtime": True}})
    assert make_source(cfg.source)._realtime


def test_kind_file_pointing_at_a_folder_says_it_is_a_folder(tmp_path):
    cfg = parse_config({"source": {"kind": "file", "uri": str(tmp_path)}})
    with pytest.raises(SourceError, match='is a folder: set kind = "folder"'):
        make_source(cfg.source).open()


def test_kind_folder_pointing_at_a_file_says_it_is_a_file(tmp_path):
    video = write_video(tmp_path / "clip.avi", [OK_BGR] * 2)
    cfg = parse_config({"source": {"kind": "folder", "uri": str(video)}})
    with pytest.raises(SourceError, match='is a file: set kind = "file"'):
        make_source(cfg.source).open()
