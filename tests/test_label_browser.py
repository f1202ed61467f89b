"""End to end in headless Chromium: keys label frames, the trainer reads what was saved."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from browser_helpers import needs_chromium
from label_helpers import make_video, start_server

from pi_inspect.edge.data.table import SEED_LABELS, read_dataset, read_table
from pi_inspect.edge.label.sources import open_frames

pytestmark = needs_chromium


@pytest.fixture
def page(browser):
    context = browser.new_context()
    tab = context.new_page()
    tab.set_default_timeout(15_000)
    yield tab
    context.close()


def open_tool(page, server):
    page.goto(server.url)
    page.wait_for_selector("body[data-ready=true]")


def at_frame(page, index: int, saved: bool):
    page.wait_for_selector(f"body[data-index='{index}'][data-saved='{str(saved).lower()}']")


def expect_values(page, expected: dict[str, bool]) -> None:
    """Wait until the label buttons show ``expected`` (key actions run asynchronously)."""
    script = """(expected) => Object.entries(expected).every(([label, value]) =>
        document.querySelector(`#labels button[data-label="${label}"]`)
            ?.getAttribute("aria-pressed") === String(value))"""
    page.wait_for_function(script, arg=expected)
    shown = {
        b.get_attribute("data-label"): b.get_attribute("aria-pressed") == "true"
        for b in page.query_selector_all("#labels button")
    }
    assert shown == expected


def press(page, keys: str):
    for key in keys:
        page.keyboard.press(key)


def test_keys_label_video_frames_and_the_trainer_reads_the_table(page, tmp_path):
    video = make_video(tmp_path / "seam.mp4", frames=6)
    out = tmp_path / "out"
    with start_server(video, out) as server:
        open_tool(page, server)
        at_frame(page, 0, saved=False)
        assert page.inner_text("#name") == "seam_0.png"
        expect_values(page, dict.fromkeys(SEED_LABELS, False))
        press(page, "gl")
        expect_values(page, {"good": True, "error": False, "break": False, "length": True})
        press(page, "s")
        at_frame(page, 0, saved=True)
        press(page, "n")
        at_frame(page, 1, saved=False)  # values carry over, as the seed's picstats did
        press(page, "eg")
        press(page, "s")
        at_frame(page, 1, saved=True)
        press(page, "nn")
        at_frame(page, 3, saved=False)
        press(page, "bs")
        at_frame(page, 3, saved=True)
        press(page, "p")
        at_frame(page, 2, saved=False)
        press(page, "p")
        at_frame(page, 1, saved=True)
        expect_values(page, {"good": False, "error": True, "break": False, "length": True})
        press(page, "q")
        page.wait_for_selector("body[data-stopped=true]")
        server.stopped.wait(5)
        assert server.stopped.is_set()

    assert (out / "labels.csv").read_text().splitlines() == [
        "name,good,error,break,length,source",
        "seam_0.png,True,False,False,True,seam",
        "seam_1.png,False,True,False,True,seam",
        "seam_3.png,False,True,True,True,seam",
    ]
    ds = read_dataset(out)  # what `pi-inspect train --data OUT` reads
    assert ds.task == "multilabel" and ds.labels == SEED_LABELS
    assert ds.paths == [(out / f"seam_{i}.png").absolute() for i in (0, 1, 3)]
    np.testing.assert_array_equal(ds.y, [[1, 0, 0, 1], [0, 1, 0, 1], [0, 1, 1, 1]])
    assert ds.sources == ["seam"] * 3
    frames = open_frames(video)
    for i, path in zip((0, 1, 3), ds.paths, strict=True):
        np.testing.assert_array_equal(cv2.imread(str(path)), frames.read(i))
    frames.close()
    assert sorted(p.name for p in out.iterdir()) == [
        "labels.csv",
        "seam_0.png",
        "seam_1.png",
        "seam_3.png",
    ]


def test_reopening_shows_the_next_unlabelled_frame_and_relabelling_replaces_a_row(page, tmp_path):
    video = make_video(tmp_path / "seam.mp4", frames=6)
    out = tmp_path / "out"
    with start_server(video, out) as server:
        open_tool(page, server)
        press(page, "bs")
        at_frame(page, 0, saved=True)
        press(page, "nes")
        at_frame(page, 1, saved=True)
    with start_server(video, out) as server:
        open_tool(page, server)
        at_frame(page, 2, saved=False)
        expect_values(page, {"good": False, "error": True, "break": True, "length": False})
        press(page, "pp")
        at_frame(page, 0, saved=True)
        press(page, "gs")
        at_frame(page, 0, saved=True)
    ds = read_table(out / "labels.csv")
    assert [p.name for p in ds.paths] == ["seam_0.png", "seam_1.png"]
    np.testing.assert_array_equal(ds.y, [[1, 0, 1, 0], [0, 1, 1, 0]])


def test_buttons_label_images_into_class_folders(page, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(4):
        cv2.imwrite(str(folder / f"line_{i}.png"), np.full((20, 30, 3), 60 * i, np.uint8))
    out = tmp_path / "out"
    classes = ("good", "torn")
    with start_server(folder, out, mode="multiclass", labels=classes) as server:
        open_tool(page, server)
        at_frame(page, 0, saved=False)
        page.click("button[data-label=torn]")
        expect_values(page, {"good": False, "torn": True})
        page.click("#save")
        at_frame(page, 0, saved=True)
        page.click("#next")
        at_frame(page, 1, saved=False)
        page.keyboard.press("g")  # keys pick one class in multi-class mode
        expect_values(page, {"good": True, "torn": False})
        page.click("#save")
        at_frame(page, 1, saved=True)
        page.click("#quit")
        page.wait_for_selector("body[data-stopped=true]")
    ds = read_dataset(out)
    assert ds.task == "multiclass" and ds.labels == classes
    assert [p.relative_to(out).as_posix() for p in ds.paths] == [
        "good/line_1.png",
        "torn/line_0.png",
    ]
    np.testing.assert_array_equal(ds.y, [[1, 0], [0, 1]])
