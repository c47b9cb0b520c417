# Copyright (c) 2026 SAM-Med3D MONAI bundle contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#     http://www.apache.org/licenses/LICENSE-2.0
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.
"""OHIF, the viewer inside the monailabel wheel, clicked in headless Chromium against README's MONAI Label install.

The server is README's start command on the demo CT as a DICOM series in a real DICOMweb store (Orthanc); Debian's
Chromium is driven through Debian's chromedriver with Selenium (nothing downloaded). The test does what a user does:
opens the study in OHIF's MONAI Label mode, types the server's address into the panel and connects, picks ``sam_med3d``
and ``kidney_right`` under *Point Prompts*, clicks the right kidney on the axial view and presses *Run*; then a negative
click (label ``background``); then a second tab, a second user, clicks the same image in between. What the browser holds
(the segmentation's label map in cornerstone's cache) is compared voxel for voxel with fresh sessions of the bundle,
in this process, fed the clicks the server logged it received; the overlay is checked on screenshots.

Screenshots (PNG) and the browser's console go to the test's ``tmp_path``; ``docs/ohif_kidney.png`` is a copy of one
run's ``kidney_overlay.png``.
"""

from __future__ import annotations

import ast
import base64
import io
import json
import re
import time
from pathlib import Path

import numpy as np
import pytest
import requests
from app_install import Server
from conftest import BUNDLE
from PIL import Image
from scipy import ndimage
from selenium import webdriver
from selenium.common.exceptions import (
    ElementClickInterceptedException,
    ElementNotInteractableException,
    StaleElementReferenceException,
)
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.actions.action_builder import ActionBuilder
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select, WebDriverWait

from scripts import InteractiveSession, load_network
from scripts.inference import ClickWindowInferer
from scripts.inference.image_input import as_image

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
MODEL = "sam_med3d"
LABEL = "kidney_right"
# README's main job's right-kidney click (inference.json), and more voxels of the right kidney on its axial slice.
KIDNEY = (86, 43, 74)
SECOND_TAB_CLICKS = ((88, 40, 74), (85, 41, 74))
FIRST_TAB_LAST_CLICK = (84, 45, 74)
AXIAL = "mpr-axial"  # the axial viewport of OHIF's MPR layout (MONAI Label mode's hanging protocol)
ZOOM = 2.5  # the axial view is zoomed on the kidney: a 3 mm voxel is then ~5 screen pixels wide
WAIT = 120  # seconds: the longest any step may take on a loaded 2-core machine
# A pixel shows the overlay when it lies between the pixel before and the segment's colour (opacity ALPHA or more)
# within BLEND_TOLERANCE grey levels per channel; a pixel off the mask changes by UNCHANGED levels at most.
ALPHA = 0.2
BLEND_TOLERANCE = 12.0
UNCHANGED = 8.0
DOCS_PNG_LIMIT = 300_000

CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",  # WebGL (cornerstone's rendering) then runs on SwiftShader, the CPU
    "--enable-unsafe-swiftshader",  # Chromium deprecates the silent SwiftShader fallback; opt in explicitly
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,800",  # the panel is usable at this size
    "--force-device-scale-factor=1",  # screenshot pixels are the page's CSS pixels
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",  # OHIF asks for Google Fonts: fail at once, offline
)

# The axial viewport's volume geometry: index -> world (LPS mm) of the origin and the three unit steps.
JS_GEOMETRY = """
const id = window.services.cornerstoneViewportService.getViewportInfo(arguments[0]).viewportData.data[0].volume.imageData;
const corners = [[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]].map(p => Array.from(id.indexToWorld(p)));
return {dims: Array.from(id.getDimensions()), corners: corners};
"""
# Whether the viewport's volume has loaded.
JS_LOADED = """
try {
  return !!window.services.cornerstoneViewportService.getViewportInfo(arguments[0]).viewportData.data[0].volume.loadStatus.loaded;
} catch (e) { return false; }
"""
# Move the viewport's camera onto a voxel (its slice, centred) and zoom; returns the slice shown and the voxel back.
JS_FOCUS = """
const [vpId, ijk, zoom] = arguments;
const vp = cornerstone.getRenderingEngines()[0].getViewport(vpId);
const id = window.services.cornerstoneViewportService.getViewportInfo(vpId).viewportData.data[0].volume.imageData;
const w = id.indexToWorld(ijk);
const cam = vp.getCamera();
const offset = [0, 1, 2].map(a => cam.position[a] - cam.focalPoint[a]);
vp.setCamera({focalPoint: w, position: [0, 1, 2].map(a => w[a] + offset[a]), parallelScale: cam.parallelScale / zoom});
vp.render();
return {slice: vp.getCurrentImageIdIndex(), slices: vp.getNumberOfSlices(), voxel: Array.from(id.worldToIndex(w)).map(Math.round)};
"""
# Where voxels are on the page (CSS pixels of the window), and the canvas' rectangle.
JS_SCREEN = """
const [vpId, voxels] = arguments;
const vp = cornerstone.getRenderingEngines()[0].getViewport(vpId);
const id = window.services.cornerstoneViewportService.getViewportInfo(vpId).viewportData.data[0].volume.imageData;
const r = vp.canvas.getBoundingClientRect();
return {points: voxels.map(v => { const c = vp.worldToCanvas(id.indexToWorld(v)); return [r.left + c[0], r.top + c[1]]; }),
        rect: [r.left, r.top, r.width, r.height]};
"""
# The MONAI Label probes placed on the viewport (OHIF turns each into a click), as voxel indices (rounded, as OHIF does).
JS_PROBES = """
const id = window.services.cornerstoneViewportService.getViewportInfo(arguments[0]).viewportData.data[0].volume.imageData;
return cornerstoneTools.annotation.state.getAllAnnotations().filter(a => a.metadata.toolName === 'ProbeMONAILabel')
  .map(a => Array.from(id.worldToIndex(a.data.handles.points[0])).map(Math.round));
"""
JS_ACTIVE_VIEWPORT = "return window.services.viewportGridService.getState().activeViewportId;"
# Undo what Selenium's scroll-into-view did to the viewer's containers (the panel is taller than the window).
JS_UNSCROLL = """
for (let e = cornerstone.getRenderingEngines()[0].getViewport(arguments[0]).canvas; e; e = e.parentElement) e.scrollTop = 0;
"""
# Count the segmentation updates (OHIF's updateView sets the label map, then fires this event).
JS_COUNT_UPDATES = """
if (window.__segmentationUpdates === undefined) {
  window.__segmentationUpdates = 0;
  cornerstone.eventTarget.addEventListener(cornerstoneTools.Enums.Events.SEGMENTATION_DATA_MODIFIED,
                                           () => { window.__segmentationUpdates += 1; });
}
return window.__segmentationUpdates;
"""
# How many voxels of the label map in cornerstone's cache hold a segment.
JS_SEGMENT_VOXELS = """
const service = window.services.segmentationService;
const seg = service.getSegmentation('1');
const segments = seg.segments || seg.config.segments;
const index = Object.values(segments).find(s => s.label === arguments[0]).segmentIndex;
const data = service.getLabelmapVolume('1').voxelManager.getCompleteScalarDataArray();
let n = 0;
for (let i = 0; i < data.length; i++) if (data[i] === index) n += 1;
return n;
"""
# Count the viewport's renders (cornerstone fires IMAGE_RENDERED on its element once a frame is drawn).
JS_COUNT_RENDERS = """
const element = cornerstone.getRenderingEngines()[0].getViewport(arguments[0]).element;
if (element.__renders === undefined) {
  element.__renders = 0;
  element.addEventListener(cornerstone.Enums.Events.IMAGE_RENDERED, () => { element.__renders += 1; });
}
return element.__renders;
"""
# The label map in cornerstone's cache: the voxels of one segment (base64 of 0/1 bytes, x fastest), the values present,
# the segment's index and its colour on the viewport.
JS_LABELMAP = """
const [vpId, label] = arguments;
const service = window.services.segmentationService;
const seg = service.getSegmentation('1');
const segments = seg.segments || seg.config.segments;
const index = Object.values(segments).find(s => s.label === label).segmentIndex;
const volume = service.getLabelmapVolume('1');
const data = volume.voxelManager.getCompleteScalarDataArray();
const bits = new Uint8Array(data.length);
const values = {};
for (let i = 0; i < data.length; i++) { bits[i] = data[i] === index ? 1 : 0; values[data[i]] = (values[data[i]] || 0) + 1; }
let text = '';
for (let i = 0; i < bits.length; i += 0x8000) text += String.fromCharCode.apply(null, bits.subarray(i, i + 0x8000));
return {b64: btoa(text), dims: Array.from(volume.dimensions), values: values, index: index,
        color: Array.from(cornerstoneTools.segmentation.config.color.getSegmentIndexColor(vpId, '1', index))};
"""
# The organ list's container scrolled so that a row shows (for the screenshots).
JS_SHOW_ROW = """
const row = arguments[0]; const box = row.closest('.bodyTableContainer');
box.scrollTop += row.getBoundingClientRect().top - box.getBoundingClientRect().top - 2;
"""

CLICK_LINE = re.compile(
    r"click request \((?P<kind>\w+)\).*?(?P<voxels>\d+) voxels.*?(?P<seconds>[\d.]+) s; "
    r"clicks in the order made \(voxel, positive\): (?P<clicks>\[.*\])\s*$"
)


def _server_answers(log: str) -> list[dict]:
    """The click requests the server answered, from its log: kind of change, clicks in the order made, voxels, s."""
    answers = []
    for line in log.splitlines():
        found = CLICK_LINE.search(line)
        if found:
            clicks = [(tuple(point), int(positive)) for point, positive in ast.literal_eval(found["clicks"])]
            answers.append(
                {
                    "kind": found["kind"],
                    "clicks": clicks,
                    "voxels": int(found["voxels"]),
                    "seconds": float(found["seconds"]),
                }
            )
    return answers


def _chromium(profile: Path, log: Path) -> webdriver.Chrome:
    """Debian's Chromium through Debian's chromedriver (given explicitly: Selenium Manager downloads nothing)."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER, log_output=str(log)), options=options)


def _blend(before: np.ndarray, after: np.ndarray, colour: np.ndarray) -> tuple[float, float]:
    """How far ``after`` went from ``before`` towards ``colour`` (the opacity: 0 none, 1 all), and how far it is off
    that line (grey levels, the largest channel)."""
    step = colour - before
    alpha = float(np.dot(after - before, step) / np.dot(step, step))
    return alpha, float(np.abs(after - (before + alpha * step)).max())


def _pixel(png: bytes, point: tuple[float, float]) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB").getpixel((round(point[0]), round(point[1]))), float)


class OhifTab:
    """One browser tab with OHIF's MONAI Label mode on the study: one user.

    Args:
        driver: the browser.
        server: the MONAI Label server (README's start command).
        study: the StudyInstanceUID to open.
        folder: where the screenshots go.
        name: the tab's name in the screenshots' file names.
        new_tab: open a new tab (else use the current one).
    """

    def __init__(self, driver: webdriver.Chrome, server: Server, study: str, folder: Path, name: str, new_tab: bool):
        self.driver, self.server, self.folder, self.name = driver, server, folder, name
        if new_tab:
            driver.switch_to.new_window("tab")
        self.handle = driver.current_window_handle
        driver.get(f"{server.url}/ohif/monai-label?StudyInstanceUIDs={study}")
        self.wait(lambda d: d.execute_script(JS_LOADED, AXIAL), "the axial viewport's volume did not load")
        self.dismiss_banner()
        driver.execute_script(JS_COUNT_UPDATES)

    def wait(self, condition, message, timeout: float = WAIT):
        """Wait for ``condition(driver)``; on time-out, fail with ``message`` (or what ``message()`` says then), a
        screenshot ``<tab>_failed.png`` and the server's last lines."""
        try:
            return WebDriverWait(self.driver, timeout, poll_frequency=0.2).until(condition)
        except Exception as e:
            self.screenshot("failed")
            said = message() if callable(message) else message
            raise AssertionError(f"{self.name}: {said}\nserver log:\n{self.server.output()[-2500:]}") from e

    def activate(self) -> None:
        """Bring the tab to the front (the other user's turn)."""
        self.driver.switch_to.window(self.handle)

    def dismiss_banner(self) -> None:
        """Hide OHIF's 'investigational use only' banner: it covers the bottom of the panel."""
        for button in self.driver.find_elements(By.XPATH, "//button[normalize-space(.)='Confirm and Hide']"):
            try:
                button.click()
            except Exception:  # gone in the meantime
                pass

    def press(self, find, what: str) -> None:
        """Click a control of the panel (``find()`` finds it anew each try: the panel re-renders; a toast or the
        banner may cover it for a moment)."""

        def pressed(_) -> bool:
            try:
                find().click()
                return True
            except ElementClickInterceptedException:
                self.dismiss_banner()
            except ElementNotInteractableException:  # e.g. an organ row scrolled out of its list: bring it in
                self.driver.execute_script("arguments[0].scrollIntoView({block: 'nearest'});", find())
            except StaleElementReferenceException:
                pass
            return False

        self.wait(pressed, f"could not click {what}", timeout=30)
        self.driver.execute_script(JS_UNSCROLL, AXIAL)

    def screenshot(self, name: str) -> bytes:
        """The window as PNG, also saved as ``<tab>_<name>.png``."""
        png = self.driver.get_screenshot_as_png()
        (self.folder / f"{self.name}_{name}.png").write_bytes(png)
        return png

    def connect(self) -> None:
        """Type the server's address into the panel (its default is port 8000 of this host) and connect."""
        field = self.wait(lambda d: d.find_element(By.ID, "monailabelServerURL"), "no server field in the panel")
        # select and overwrite: clearing the field first would blur it empty, and the panel crashes on an empty URL
        field.send_keys(Keys.CONTROL, "a")
        field.send_keys(f"{self.server.url}/")
        self.press(lambda: self.driver.find_element(By.CSS_SELECTOR, ".settingsTable button.actionButton"), "connect")
        self.wait(lambda d: self._point_prompts(d), "the panel did not connect (no Point Prompts tab)")

    @staticmethod
    def _point_prompts(driver):
        found = driver.find_elements(By.XPATH, "//label[@class='tab-label' and normalize-space(.)='Point Prompts']/..")
        return found[0] if found else None

    @property
    def tab(self):
        """The panel's Point Prompts section."""
        return self._point_prompts(self.driver)

    def listing(self) -> tuple[list[str], list[str]]:
        """The models and the organ names listed under Point Prompts."""
        models = [o.get_attribute("value") for o in self.tab.find_elements(By.CSS_SELECTOR, "select.selectBox option")]
        rows = self.tab.find_elements(By.CSS_SELECTOR, "table.optionsTable tr.clickable-row")
        organs = [r.get_attribute("textContent").strip() for r in rows]  # text, shown or not (a closed section)
        return models, organs

    def open_point_prompts(self, model: str) -> None:
        """Open the Point Prompts section (this activates the MONAI Label probe) and choose the model."""
        self.press(lambda: self.tab.find_element(By.CSS_SELECTOR, "label.tab-label"), "Point Prompts")
        self.wait(
            lambda d: self.tab.find_element(By.CSS_SELECTOR, "input.tab-switch").is_selected(), "no Point Prompts"
        )
        Select(self.tab.find_element(By.CSS_SELECTOR, "select.selectBox")).select_by_value(model)

    def row(self, label: str):
        return self.tab.find_element(By.XPATH, f".//tr[td[normalize-space(.)='{label}']]")

    def choose(self, label: str) -> None:
        """Select an organ (``background``: the clicks made now are negative ones)."""
        self.press(lambda: self.row(label), label)
        colour = "darkred" if label == "background" else "darkblue"
        self.wait(lambda d: colour in self.row(label).get_attribute("style"), f"{label} was not selected")
        self.driver.execute_script(JS_SHOW_ROW, self.row(label))

    def focus(self, voxel: tuple[int, int, int]) -> None:
        """Put the axial view on the voxel's slice, centred on it, zoomed in."""
        rendered = self.driver.execute_script(JS_COUNT_RENDERS, AXIAL)
        shown = self.driver.execute_script(JS_FOCUS, AXIAL, list(voxel), ZOOM)
        assert shown["voxel"] == list(voxel), f"{self.name}: the axial view shows {shown}, not voxel {voxel}"
        self.wait(lambda d: d.execute_script(JS_COUNT_RENDERS, AXIAL) > rendered, "the axial view did not render")

    def screen(self, voxels) -> tuple[list[tuple[float, float]], list[float]]:
        """The page positions of voxels on the axial view, and the view's rectangle."""
        found = self.driver.execute_script(JS_SCREEN, AXIAL, [list(v) for v in voxels])
        return [tuple(p) for p in found["points"]], found["rect"]

    def _click_at(self, point: tuple[float, float]) -> None:
        actions = ActionBuilder(self.driver)
        actions.pointer_action.move_to_location(round(point[0]), round(point[1])).click()
        actions.perform()

    def click(self, voxel: tuple[int, int, int]) -> None:
        """Click the voxel on the axial view: one MONAI Label probe more, on that voxel."""
        (point,), _ = self.screen([voxel])
        if self.driver.execute_script(JS_ACTIVE_VIEWPORT) != AXIAL:  # the first click only activates a viewport
            self._click_at(point)
            self.wait(lambda d: d.execute_script(JS_ACTIVE_VIEWPORT) == AXIAL, "the axial view did not activate")
        before = self.driver.execute_script(JS_PROBES, AXIAL)
        self._click_at(point)
        self.wait(lambda d: len(d.execute_script(JS_PROBES, AXIAL)) > len(before), f"no probe placed at {voxel}")
        placed = self.driver.execute_script(JS_PROBES, AXIAL)
        assert placed == [*before, list(voxel)], f"{self.name}: probes {placed} after clicking {voxel} at {point}"

    def run(self) -> tuple[np.ndarray, dict]:
        """Press Run; wait for the answer in the label map. Returns the segment's mask (image index order) and the
        server's log of the request (``kind``, ``clicks``, ``voxels``, ``seconds``) with the browser's round trip."""
        answered = len(_server_answers(self.server.output()))
        updates = self.driver.execute_script(JS_COUNT_UPDATES)
        seen = {}

        def answer_shown(driver) -> bool:  # the server answered, OHIF updated the label map, with as many voxels
            answers = _server_answers(self.server.output())
            seen.update(answers=answers[answered:], updates=driver.execute_script(JS_COUNT_UPDATES) - updates)
            if not answers[answered:] or not seen["updates"]:
                return False
            seen["browser_voxels"] = driver.execute_script(JS_SEGMENT_VOXELS, LABEL)
            return seen["browser_voxels"] == answers[-1]["voxels"]

        started = time.perf_counter()
        self.press(lambda: self.tab.find_element(By.CSS_SELECTOR, "button[title='Run PointPrompts']"), "Run")
        self.wait(answer_shown, lambda: f"Run's answer did not reach the label map: {seen}")
        round_trip = time.perf_counter() - started
        assert len(seen["answers"]) == 1, f"{self.name}: {len(seen['answers'])} requests for one Run"
        mask, labelmap = self.labelmap(LABEL)
        return mask, {**seen["answers"][0], "round_trip": round(round_trip, 3), "labelmap": labelmap}

    def quiet(self) -> None:
        """Wait for OHIF's notifications to go (they cover the bottom of the panel)."""
        self.wait(
            lambda d: not any(e.is_displayed() for e in d.find_elements(By.CSS_SELECTOR, "[data-sonner-toast]")),
            "notifications stay",
            timeout=30,
        )

    def labelmap(self, label: str) -> tuple[np.ndarray, dict]:
        """The segment's voxels in the browser's label map as a bool array in (i, j, k) order, and what else it says
        (values present, segment index, colour)."""
        found = self.driver.execute_script(JS_LABELMAP, AXIAL, label)
        nx, ny, nz = found["dims"]
        flat = np.frombuffer(base64.b64decode(found["b64"]), dtype=np.uint8)
        return flat.reshape(nz, ny, nx).transpose(2, 1, 0).astype(bool), {k: v for k, v in found.items() if k != "b64"}


@pytest.fixture(scope="module")
def ohif_server(app_install, orthanc, tmp_path_factory):
    """README's start command on the DICOMweb store of the demo CT (its own port: the panel takes any address)."""
    server = Server(app_install, orthanc.dicomweb, tmp_path_factory.mktemp("ohif_server") / "server.log")
    try:
        server.wait_up()
        yield server
    finally:
        server.cleanup()
    assert "Traceback" not in server.output(), server.output()[-3000:]


@pytest.fixture
def browser(orthanc, tmp_path):
    """Headless Chromium (the ``orthanc`` fixture installs the Debian packages first)."""
    driver = _chromium(tmp_path / "profile", tmp_path / "chromedriver.log")
    try:
        yield driver
    finally:
        try:  # the console of every tab, for a failure's diagnosis
            lines = [f"{e['level']} {e['message']}" for e in driver.get_log("browser")]
            (tmp_path / "console.txt").write_text("\n".join(lines), encoding="utf-8")
        finally:
            driver.quit()


@pytest.fixture(scope="module")
def reference(orthanc):
    """``reference(clicks) -> mask``: a fresh session of the bundle on the DICOM series the store holds, fed the clicks
    in the order given (the command line's path)."""
    network = load_network(BUNDLE / "models")  # the lookup the server makes in its copy of the bundle
    prepared = ClickWindowInferer().prepare(as_image(orthanc.series_folder), network)

    def run(clicks) -> np.ndarray:
        session = InteractiveSession.on_prepared(prepared)
        for point, positive in clicks:
            session.click(list(point), positive=bool(positive))
        return session.mask

    run.affine = np.asarray(prepared.image.affine, dtype=np.float64)
    run.shape = tuple(prepared.image.shape[1:])
    return run


def _study_uid(orthanc) -> str:
    """The StudyInstanceUID of the store's demo series (DICOMweb QIDO-RS), which OHIF's address names."""
    answer = requests.get(f"{orthanc.dicomweb}/series", params={"SeriesInstanceUID": orthanc.series_uid}, timeout=30)
    answer.raise_for_status()
    return answer.json()[0]["0020000D"]["Value"][0]


def _browser_affine(tab: OhifTab) -> np.ndarray:
    """The browser volume's voxel-to-RAS affine (cornerstone's is LPS)."""
    corners = np.asarray(tab.driver.execute_script(JS_GEOMETRY, AXIAL)["corners"], dtype=np.float64)
    affine = np.eye(4)
    affine[:3, :3] = (corners[1:] - corners[0]).T
    affine[:3, 3] = corners[0]
    return np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine


def test_ohif_panel_lists_sam_med3d_with_the_bundle_labels(ohif_server, orthanc, browser, tmp_path):
    """The panel, connected to the server's own port, lists the click model with the bundle's organ names."""
    tab = OhifTab(browser, ohif_server, _study_uid(orthanc), tmp_path, "tab1", new_tab=False)
    tab.connect()
    models, organs = tab.listing()
    tab.screenshot("connected")
    names = json.loads((BUNDLE / "sample_data" / "labels.json").read_text(encoding="utf-8"))["total"].values()
    assert models == [MODEL]
    assert sorted(organs) == sorted([*names, "background"]), organs
    assert LABEL in organs and "urinary_bladder" in organs and "object" not in organs


def test_ohif_clicks_give_the_sessions_masks_and_overlay_for_each_of_two_tabs(
    ohif_server, orthanc, browser, reference, tmp_path
):
    """A click on the right kidney, a negative click, and two tabs interleaving clicks: each label map in the browser
    equals a fresh session fed the clicks the server logged (which are that tab's clicks); the overlay is drawn."""
    figures = {}
    first = OhifTab(browser, ohif_server, _study_uid(orthanc), tmp_path, "tab1", new_tab=False)
    assert tuple(first.driver.execute_script(JS_GEOMETRY, AXIAL)["dims"]) == reference.shape
    np.testing.assert_allclose(_browser_affine(first), reference.affine, atol=1e-3)  # the same (i, j, k) as the server
    first.connect()
    first.open_point_prompts(MODEL)
    first.choose(LABEL)
    first.focus(KIDNEY)
    first.click(KIDNEY)

    # (1) the right kidney: the overlay appears at the click, and only on the mask
    (click_point,), rect = first.screen([KIDNEY])
    before = first.screenshot("kidney_before_run")
    kidney, answer = first.run()
    colour = np.asarray(answer["labelmap"]["color"][:3], dtype=float)
    slice_mask = kidney[:, :, KIDNEY[2]]
    outside = ndimage.distance_transform_edt(~slice_mask)
    ring = np.argwhere((outside >= 3) & (outside <= 4))  # voxels 3 to 4 voxels off the mask
    candidates = [tuple(int(x) for x in v) for v in ring[np.argsort(np.hypot(*(ring - np.array(KIDNEY[:2])).T))][:50]]
    control_voxel = next(
        (*v, KIDNEY[2])
        for v, p in zip(candidates, first.screen([(*v, KIDNEY[2]) for v in candidates])[0])
        if rect[0] + 10 < p[0] < rect[0] + rect[2] - 10 and rect[1] + 10 < p[1] < rect[1] + rect[3] - 10
    )
    (control_point,), _ = first.screen([control_voxel])
    grey_before = _pixel(before, click_point)

    def overlaid(_) -> bool:
        alpha, off = _blend(grey_before, _pixel(first.driver.get_screenshot_as_png(), click_point), colour)
        return alpha >= ALPHA and off <= BLEND_TOLERANCE

    first.wait(overlaid, f"no overlay of colour {colour} at the click {click_point}", timeout=30)
    first.quiet()  # a clear view of the organ list for docs/ohif_kidney.png
    after = first.screenshot("kidney_overlay")
    alpha, off = _blend(grey_before, _pixel(after, click_point), colour)
    figures["overlay"] = {
        "colour": colour.tolist(),
        "click_pixel_before": grey_before.tolist(),
        "click_pixel_after": _pixel(after, click_point).tolist(),
        "opacity": round(alpha, 3),
        "control_voxel": control_voxel,
        "control_before": _pixel(before, control_point).tolist(),
        "control_after": _pixel(after, control_point).tolist(),
    }
    assert np.ptp(grey_before) <= 6, f"the click's pixel {grey_before} is not grey before Run"
    assert ALPHA <= alpha <= 1.05 and off <= BLEND_TOLERANCE, figures["overlay"]
    assert np.abs(_pixel(after, control_point) - _pixel(before, control_point)).max() <= UNCHANGED, figures["overlay"]

    # (2) a negative click: label background, a voxel of the mask two voxels in from its edge, farthest from the click
    inside = ndimage.distance_transform_edt(slice_mask)
    edge = np.argwhere((inside >= 2) & (inside < 3))
    negative = (*edge[np.argmax(np.hypot(*(edge - np.array(KIDNEY[:2])).T))], KIDNEY[2])
    negative = tuple(int(v) for v in negative)
    first.choose("background")
    first.click(negative)
    first.choose(LABEL)  # Run takes its foreground from the selected organ, its background from "background"
    carved, carved_answer = first.run()
    first.screenshot("negative_click")

    # (3) a second tab, a second user, on the same image: its clicks come in between the first tab's
    second = OhifTab(browser, ohif_server, _study_uid(orthanc), tmp_path, "tab2", new_tab=True)
    second.connect()
    second.open_point_prompts(MODEL)
    second.choose(LABEL)
    second.focus(KIDNEY)
    second.click(SECOND_TAB_CLICKS[0])
    second_one, second_one_answer = second.run()
    second.screenshot("one_click")
    first.activate()
    first.click(FIRST_TAB_LAST_CLICK)
    first_last, first_last_answer = first.run()
    first.screenshot("third_click")
    second.activate()
    second.click(SECOND_TAB_CLICKS[1])
    second_two, second_two_answer = second.run()
    second.screenshot("two_clicks")

    made = {
        "kidney": [(KIDNEY, 1)],
        "negative": [(KIDNEY, 1), (negative, 0)],
        "second tab, 1 click": [(SECOND_TAB_CLICKS[0], 1)],
        "first tab, 3 clicks": [(KIDNEY, 1), (negative, 0), (FIRST_TAB_LAST_CLICK, 1)],
        "second tab, 2 clicks": [(SECOND_TAB_CLICKS[0], 1), (SECOND_TAB_CLICKS[1], 1)],
    }
    got = {
        "kidney": (kidney, answer),
        "negative": (carved, carved_answer),
        "second tab, 1 click": (second_one, second_one_answer),
        "first tab, 3 clicks": (first_last, first_last_answer),
        "second tab, 2 clicks": (second_two, second_two_answer),
    }
    try:
        for step, clicks in made.items():
            mask, logged = got[step]
            figures[step] = {k: v for k, v in logged.items() if k != "clicks"} | {"browser_voxels": int(mask.sum())}
            # each tab's clicks in the order that tab made them, whatever the other tab did in between
            assert logged["clicks"] == clicks, f"{step}: the server got {logged['clicks']}, not {clicks}"
            values = set(logged["labelmap"]["values"])
            assert values <= {"0", str(logged["labelmap"]["index"])}, f"{step}: other segments painted: {logged}"
            expected = reference(clicks)  # what the tab gets alone: a fresh session with its clicks
            figures[step]["session_voxels"] = int(expected.sum())
            assert logged["voxels"] == mask.sum() and mask.any(), (step, figures[step])
            np.testing.assert_array_equal(
                mask, expected, err_msg=f"{step}: the browser's label map is not the session's"
            )
        # OHIF sends no client id: the second tab's first click continues no history (a replay of its click); then
        # the server found each tab's own history among its recent ones and added to it
        kinds = [got[s][1]["kind"] for s in ("second tab, 1 click", "first tab, 3 clicks", "second tab, 2 clicks")]
        assert kinds == ["changed", "added", "added"], kinds  # no replay once each tab has its own history
        assert not np.array_equal(carved, kidney), "the negative click changed nothing"
    finally:
        (tmp_path / "figures.json").write_text(json.dumps(figures, indent=1, default=str), encoding="utf-8")
        print(json.dumps(figures, default=str))
