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
"""The MONAI Label app (``monailabel_app/``): a real server on 127.0.0.1, driven by the class 3D Slicer uses.

The server is README's: installed and started as README says in a fresh copy with its own venv (``app_install.py``),
offline, and always stopped afterwards. Masks are compared voxel for voxel with the command line (``inference.json``)
and with fresh sessions fed the same clicks in the order made. The tests import MONAI Label's client from that venv.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from app_install import Server
from conftest import BUNDLE, DATA, ROOT

from scripts import InteractiveSession, load_network
from scripts.inference import ClickWindowInferer
from scripts.inference.image_input import as_image

# The studies: the demo CT (README's main job), a small CT (a second image) and the shipped MRI (LPS).
DEMO_CT = BUNDLE / "sample_data" / "example_ct.nii.gz"
SMALL_CT = DATA / "totalsegmentator" / "example_ct_sm.nii.gz"
MRI = DATA / "totalsegmentator" / "example_mr_sm.nii.gz"
# The app's model name.
MODEL = "sam_med3d"
# README's main job: (object, click, value in the label map), in the request's order.
MAIN_JOB = (("kidney_right", [86, 43, 74], 2), ("urinary_bladder", [59, 53, 18], 21))
MRI_CLICK = [90, 61, 16]  # inside label 1 of example_seg_mr

sys.path.insert(0, str(ROOT / "monailabel_app"))
from lib.cache import PreparedCache  # noqa: E402
from lib.clicks import continued_history, diff_clicks  # noqa: E402


@pytest.fixture(scope="module")
def client_class(app_install):
    """``monailabel.client.MONAILabelClient`` (the class the Slicer plugin carries) from README's install."""
    if str(app_install.site_packages) not in sys.path:
        sys.path.append(str(app_install.site_packages))  # after this environment's own packages
    from monailabel.client import MONAILabelClient

    return MONAILabelClient


@pytest.fixture(scope="module")
def server(app_install, tmp_path_factory):
    """README's server on a studies folder with the demo CT, a small CT, the MRI and an unreadable file."""
    root = tmp_path_factory.mktemp("monailabel")
    studies = root / "studies"
    studies.mkdir()
    for image in (DEMO_CT, SMALL_CT, MRI):
        (studies / image.name).write_bytes(image.read_bytes())
    (studies / "broken.nii.gz").write_bytes(b"not an image")
    running = Server(app_install, studies, root / "server.log")
    try:
        running.wait_up()
        yield {"url": running.url, "studies": studies, "log": running.log, "root": root, "server": running}
    finally:
        running.cleanup()


@pytest.fixture(scope="module")
def network():
    torch.set_num_threads(1)
    return load_network(BUNDLE / "models")  # the lookup the server uses


@pytest.fixture(scope="module")
def reference(network):
    """Fresh sessions on images prepared once in this process: ``reference(image, clicks[, box]) -> (mask, iou)``."""
    prepared = {}

    def run(image: Path, clicks: list, box: tuple | None = None) -> tuple[np.ndarray, float]:
        if image not in prepared:
            prepared[image] = ClickWindowInferer().prepare(as_image(image), network)
        session = InteractiveSession.on_prepared(prepared[image])
        if box is not None:
            session.box(*box)
        for point, positive in clicks:
            session.click(point, positive=positive)
        return session.mask, session.iou

    return run


def _infer(client, image_id: str, foreground: list, background: list = (), label: str = "object", **extra):
    params = {"foreground": list(foreground), "background": list(background), "label": label, **extra}
    file_name, answer = client.infer(MODEL, image_id, params)
    answer = json.loads(answer) if isinstance(answer, str) else answer
    return nib.load(file_name), answer


def _command_line(tmp_path: Path, input_dict: str) -> Path:
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", "configs/inference.json"]
    cmd += ["--output_dir", str(tmp_path), "--input_dict", input_dict]
    done = subprocess.run(cmd, cwd=BUNDLE, capture_output=True, encoding="utf-8", errors="replace")
    assert done.returncode == 0, done.stderr[-2000:]
    (written,) = tmp_path.glob("*_seg.nii.gz")
    return written


def _assert_on_grid(mask_image, image: Path) -> None:
    source = nib.load(image)
    assert mask_image.shape == source.shape
    np.testing.assert_allclose(mask_image.affine, source.affine, atol=1e-5)


def test_info_lists_a_deepgrow_model_of_dimension_3_with_the_bundles_label_names(server, client_class):
    info = client_class(server["url"]).info()
    model = info["models"][MODEL]
    assert model["type"] == "deepgrow"
    assert model["dimension"] == 3
    table = json.loads((BUNDLE / "sample_data" / "labels.json").read_text(encoding="utf-8"))["total"]
    assert model["labels"] == {**{name: int(value) for value, name in table.items()}, "background": 0}
    assert model["labels"]["kidney_right"] == 2 and model["labels"]["urinary_bladder"] == 21  # README's main job
    # OHIF's panel appends the models' labels to this one: a list (a dict crashed it on connect)
    assert info["labels"] == list(model["labels"])


@pytest.mark.slow
def test_demo_ct_clicks_give_the_command_lines_label_map(server, client_class, tmp_path):
    written = _command_line(tmp_path, "None")  # README's main job: inference.json's own input_dict
    expected = np.asarray(nib.load(written).dataobj)
    report = json.loads(next(tmp_path.glob("*_objects.json")).read_text(encoding="utf-8"))["objects"]
    client = client_class(server["url"], client_id="main-job")
    label_map = np.zeros(expected.shape, dtype=np.uint8)
    for (name, click, value), record in zip(MAIN_JOB, report):
        mask_image, answer = _infer(client, "example_ct", [click], label=name)
        _assert_on_grid(mask_image, DEMO_CT)
        label_map[np.asarray(mask_image.dataobj) > 0] = value
        assert answer["iou"] == pytest.approx(record["iou"], abs=1e-5)
    np.testing.assert_array_equal(label_map, expected)
    assert (expected == 2).sum() > 100 and (expected == 21).sum() > 100


def test_ohif_request_gets_an_lps_nrrd_on_the_images_grid(server, reference):
    import nrrd
    import requests
    from monai.transforms import LoadImage

    params = {
        "foreground": [MAIN_JOB[0][1]],
        "background": [],
        "result_extension": ".nrrd",
        "result_dtype": "uint8",
        "result_compress": False,
        "restore_label_idx": False,
    }
    answer = requests.post(
        f"{server['url']}/infer/{MODEL}",
        params={"image": "example_ct", "output": "image"},
        data={"params": json.dumps(params)},
    )
    assert answer.status_code == 200, answer.text
    path = server["root"] / "answer.nrrd"
    path.write_bytes(answer.content)
    header = nrrd.read_header(str(path))
    assert header["space"] == "left-posterior-superior"
    assert header["type"] in ("uint8", "unsigned char")
    loaded = LoadImage(image_only=True)(str(path))
    np.testing.assert_allclose(loaded.affine.numpy(), nib.load(DEMO_CT).affine, atol=1e-4)
    expected, _ = reference(DEMO_CT, [(MAIN_JOB[0][1], True)])
    np.testing.assert_array_equal(loaded.numpy() > 0, expected)


@pytest.mark.slow
def test_mri_lps_click_gives_the_command_lines_label_map(server, client_class, tmp_path):
    written = _command_line(tmp_path, f"{{'image': '{MRI}', 'points': [{MRI_CLICK}], 'point_labels': [1]}}")
    mask_image, answer = _infer(client_class(server["url"], client_id="mri"), "example_mr_sm", [MRI_CLICK])
    _assert_on_grid(mask_image, MRI)
    expected = np.asarray(nib.load(written).dataobj) > 0
    assert expected.sum() > 0
    np.testing.assert_array_equal(np.asarray(mask_image.dataobj) > 0, expected)


def test_further_clicks_remove_reset_switch_label_and_image(server, client_class, reference):
    client = client_class(server["url"], client_id="editor")
    a, b, c, d = [86, 43, 74], [88, 47, 74], [84, 40, 76], [59, 53, 18]

    def check(image_id, image, fg, bg, clicks, change, label="object"):
        mask_image, answer = _infer(client, image_id, fg, bg, label=label)
        expected, iou = reference(image, clicks)
        np.testing.assert_array_equal(np.asarray(mask_image.dataobj) > 0, expected)
        assert answer["change"] == change and answer["clicks"] == len(clicks)
        if clicks:
            assert answer["iou"] == pytest.approx(iou, abs=1e-5)
        return answer

    first = check("example_ct", DEMO_CT, [a], [], [(a, True)], "added")
    second = check("example_ct", DEMO_CT, [a], [b], [(a, True), (b, False)], "added")
    assert second["encoded_now"] == 0 and second["encoder_calls"] == first["encoder_calls"]  # a decoder pass only
    assert not second["image_prepared"]
    check("example_ct", DEMO_CT, [c, a], [b], [(a, True), (b, False), (c, True)], "added")
    check("example_ct", DEMO_CT, [c, a], [], [(a, True), (c, True)], "removed")  # not the latest: replayed
    check("example_ct", DEMO_CT, [a], [], [(a, True)], "removed")  # the latest: undone
    empty = check("example_ct", DEMO_CT, [], [], [], "reset")
    assert empty["voxels"] == 0
    check("example_ct", DEMO_CT, [d], [], [(d, True)], "added")
    check("example_ct", DEMO_CT, [a], [], [(a, True)], "added", label="other")  # a new label starts fresh
    check("example_ct", DEMO_CT, [d, c], [], [(d, True), (c, True)], "added")  # the first label kept its clicks
    check("example_ct_sm", SMALL_CT, [[60, 50, 15]], [], [([60, 50, 15], True)], "added")
    # back on the first image, its object is still there: dropping the latest click is an undo, not a replay
    check("example_ct", DEMO_CT, [d], [], [(d, True)], "removed")


def test_two_clients_alternating_on_two_images_get_what_they_get_alone(server, client_class, reference):
    one, two = client_class(server["url"], client_id="one"), client_class(server["url"], client_id="two")
    clicks_one, clicks_two = [[86, 43, 74], [84, 40, 76]], [MRI_CLICK, [88, 60, 15]]
    for step in range(2):
        for client, image_id, image, clicks in (
            (one, "example_ct", DEMO_CT, clicks_one),
            (two, "example_mr_sm", MRI, clicks_two),
        ):
            mask_image, _ = _infer(client, image_id, clicks[: step + 1])
            expected, _ = reference(image, [(p, True) for p in clicks[: step + 1]])
            np.testing.assert_array_equal(np.asarray(mask_image.dataobj) > 0, expected)


def test_bad_requests_get_one_line_http_errors_and_the_server_stays_up(server, client_class, reference):
    import requests

    client = client_class(server["url"], client_id="bad")
    _infer(client, "example_ct", [[86, 43, 74]])  # cached before the bad requests
    url = f"{server['url']}/infer/{MODEL}"
    bad = [
        ("no_such_image", {"foreground": [[1, 2, 3]]}),
        ("../studies", {"foreground": [[1, 2, 3]]}),
        (str(server["studies"] / "example_ct.nii.gz"), {"foreground": [[1, 2, 3]]}),
        ("example_ct", {"foreground": [[500, 2, 3]]}),
        ("example_ct", {"foreground": [[1, 2]]}),
        ("example_ct", {"foreground": [[1.5, 2, 3]]}),
        ("example_ct", "{'foreground': [[1, 2, 3]]"),
        ("broken", {"foreground": [[1, 2, 3]]}),
        ("example_ct", {"foreground": [], "background": [[86, 43, 74]]}),
        ("example_ct", {"foreground": [[86, 43, 74]], "roi": [1, 2, 3]}),
    ]
    for image_id, params in bad:
        data = {"params": params if isinstance(params, str) else json.dumps(params)}
        answer = requests.post(url, params={"image": image_id}, data=data)
        assert 400 <= answer.status_code < 500, (image_id, params, answer.status_code, answer.text)
        detail = answer.json()["detail"]
        assert detail.startswith("error: ") and "\n" not in detail, detail
    mask_image, answer = _infer(client, "example_ct", [[86, 43, 74], [84, 40, 76]])
    expected, _ = reference(DEMO_CT, [([86, 43, 74], True), ([84, 40, 76], True)])
    np.testing.assert_array_equal(np.asarray(mask_image.dataobj) > 0, expected)
    assert not answer["image_prepared"] and answer["encoded_now"] == 0  # the cache survived


def test_slicer_roi_is_the_box_prompt_and_clips_the_mask(server, client_class, reference):
    roi = [90, 80, 30, 60, 70, 78]  # Slicer's [i0, i1, j0, j1, k0, k1]; pairs not sorted for flipped axes
    mask_image, answer = _infer(client_class(server["url"], client_id="roi"), "example_ct", [[86, 43, 74]], roi=roi)
    expected, _ = reference(DEMO_CT, [([86, 43, 74], True)], box=((80, 30, 70), (90, 60, 78)))  # the session's box
    box = np.zeros_like(expected)
    box[80:91, 30:61, 70:79] = True
    np.testing.assert_array_equal(np.asarray(mask_image.dataobj) > 0, expected & box)
    assert 0 < answer["voxels"] < expected.sum()


def test_upload_image_then_click_and_save_label(server, client_class, reference, tmp_path):
    client = client_class(server["url"], client_id="upload")
    client.upload_image(str(SMALL_CT), image_id="uploaded_ct")
    mask_image, _ = _infer(client, "uploaded_ct", [[60, 50, 15]])
    expected, _ = reference(SMALL_CT, [([60, 50, 15], True)])
    np.testing.assert_array_equal(np.asarray(mask_image.dataobj) > 0, expected)
    label = tmp_path / "label.nii.gz"
    nib.save(nib.Nifti1Image(expected.astype(np.uint8), nib.load(SMALL_CT).affine), label)
    client.save_label("uploaded_ct", str(label), tag="final")
    saved = server["studies"] / "labels" / "final" / "uploaded_ct.nii.gz"
    np.testing.assert_array_equal(np.asarray(nib.load(saved).dataobj), expected.astype(np.uint8))


def test_wrong_weights_are_refused_at_start_with_one_line(app_install, tmp_path):
    torch.save({"not_sam_med3d.weight": torch.zeros(3)}, tmp_path / "wrong.pt")
    studies = tmp_path / "studies"
    studies.mkdir()
    server = Server(app_install, studies, tmp_path / "server.log", conf=("weights", str(tmp_path / "wrong.pt")))
    try:
        assert server.proc.wait(240) != 0
    finally:
        server.cleanup()
    lines = [line for line in server.output().splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "wrong.pt" in lines[0], server.output()[-2000:]


@pytest.mark.slow
def test_slicer_on_a_dicomweb_store_answers_switches_labels_and_saves_a_dicom_seg(
    app_install, orthanc, client_class, reference, tmp_path
):
    """3D Slicer's requests (``MONAILabelClient``) against README's server on a DICOMweb store (Orthanc) holding the
    demo CT as a series: ``.nii.gz`` answers on the series' grid, ``roi``, label switching, and ``save_label`` landing
    in the store as a DICOM SEG that references the series and decodes to the saved mask."""
    import highdicom as hd
    import pydicom

    server = Server(app_install, orthanc.dicomweb, tmp_path / "server.log")
    try:
        server.wait_up()
        client = client_class(server.url, client_id="slicer")
        kidney, bladder = MAIN_JOB[0][1], MAIN_JOB[1][1]
        mask_image, answer = _infer(client, orthanc.series_uid, [kidney], label="kidney_right")
        _assert_on_grid(mask_image, DEMO_CT)  # the series holds the demo CT's voxels on its grid
        expected, iou = reference(DEMO_CT, [(kidney, True)])
        np.testing.assert_array_equal(np.asarray(mask_image.dataobj) > 0, expected)
        assert answer["iou"] == pytest.approx(iou, abs=1e-5)
        bladder_image, _ = _infer(client, orthanc.series_uid, [bladder], label="urinary_bladder")  # another label
        np.testing.assert_array_equal(np.asarray(bladder_image.dataobj) > 0, reference(DEMO_CT, [(bladder, True)])[0])
        both, answer = _infer(client, orthanc.series_uid, [kidney, [84, 40, 76]], label="kidney_right")  # back
        assert answer["change"] == "added" and answer["clicks"] == 2  # the kidney's first click was kept
        two = reference(DEMO_CT, [(kidney, True), ([84, 40, 76], True)])[0]
        np.testing.assert_array_equal(np.asarray(both.dataobj) > 0, two)
        roi = [90, 80, 30, 60, 70, 78]
        clipped, _ = _infer(client_class(server.url, client_id="roi"), orthanc.series_uid, [kidney], roi=roi)
        box = np.zeros_like(expected)
        box[80:91, 30:61, 70:79] = True
        boxed = reference(DEMO_CT, [(kidney, True)], box=((80, 30, 70), (90, 60, 78)))[0]
        np.testing.assert_array_equal(np.asarray(clipped.dataobj) > 0, boxed & box)

        label = tmp_path / "kidney.nii.gz"
        nib.save(nib.Nifti1Image(two.astype(np.uint8), nib.load(DEMO_CT).affine), label)
        params = {"label_info": [{"name": "kidney_right", "idx": 1, "color": [185, 102, 83]}]}
        client.save_label(orthanc.series_uid, str(label), tag="final", params=params)
    finally:
        server.stop()
    assert server.leftovers() == [], server.leftovers()
    (seg_series,) = orthanc.series_of_modality("SEG")
    (blob,) = orthanc.instance_files(seg_series["0020000E"]["Value"][0])
    seg = hd.seg.Segmentation.from_dataset(pydicom.dcmread(pydicom.filebase.DicomBytesIO(blob)))
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == orthanc.series_uid
    assert [s.SegmentLabel for s in seg.SegmentSequence] == ["kidney_right"]
    # decoded by position: each frame lands on the source slice with its ImagePositionPatient, rows and columns as the
    # series' (pixel (r, c) of slice k is voxel (i=c, j=r, k), as tests/dicom_series.py writes it)
    slices = [pydicom.dcmread(p, stop_before_pixels=True) for p in orthanc.series_folder.glob("*.dcm")]
    k_of = {tuple(round(float(v), 3) for v in ds.ImagePositionPatient): int(ds.InstanceNumber) - 1 for ds in slices}
    shared = seg.SharedFunctionalGroupsSequence[0]
    orientation = [float(v) for v in shared.PlaneOrientationSequence[0].ImageOrientationPatient]
    np.testing.assert_allclose(orientation, [float(v) for v in slices[0].ImageOrientationPatient], atol=1e-5)
    spacing = [float(v) for v in shared.PixelMeasuresSequence[0].PixelSpacing]
    np.testing.assert_allclose(spacing, [float(v) for v in slices[0].PixelSpacing], atol=1e-5)
    decoded = np.zeros_like(two)
    frames = seg.pixel_array.reshape(-1, seg.Rows, seg.Columns)
    for frame, group in zip(frames, seg.PerFrameFunctionalGroupsSequence):
        assert group.SegmentIdentificationSequence[0].ReferencedSegmentNumber == 1
        position = tuple(round(float(v), 3) for v in group.PlanePositionSequence[0].ImagePositionPatient)
        decoded[:, :, k_of[position]] = frame.T > 0
    np.testing.assert_array_equal(decoded, two)


def test_click_diff_recognises_added_removed_reset_and_changed():
    a, b, c = ((1, 2, 3), 1), ((4, 5, 6), 0), ((7, 8, 9), 1)
    assert diff_clicks([], [a]).kind == "added"
    assert diff_clicks([a, b], [a, b]).kind == "unchanged"
    added = diff_clicks([a], [c, a, b])  # resent unordered: the old click kept first, new ones in request order
    assert (added.kind, added.clicks, added.added) == ("added", [a, c, b], [c, b])
    latest = diff_clicks([a, b, c], [a, b])
    assert (latest.kind, latest.clicks, latest.undo) == ("removed", [a, b], 1)
    middle = diff_clicks([a, b, c], [c, a])
    assert (middle.kind, middle.clicks, middle.undo) == ("removed", [a, c], 0)
    assert diff_clicks([a, b], []).kind == "reset"
    moved = diff_clicks([a, b], [a, c])
    assert (moved.kind, moved.clicks) == ("changed", [a, c])


def test_a_request_continues_its_own_tabs_history_not_the_latest():
    """OHIF's tabs share one client id: a request goes on from the history it extends, whichever came last."""
    a, n, b, c, d = ((1, 1, 1), 1), ((2, 2, 2), 0), ((3, 3, 3), 1), ((4, 4, 4), 1), ((5, 5, 5), 1)
    first_tab, second_tab = [a, n], [b]  # the second tab clicked last
    assert continued_history([first_tab, second_tab], [c, a, n]) == 0  # the first tab's click comes in: added to it
    assert continued_history([first_tab, second_tab], [b, d]) == 1
    assert continued_history([first_tab, second_tab], [a, n]) == 0  # unchanged
    assert continued_history([first_tab, second_tab], [a]) == 0  # its latest click undone
    assert continued_history([[a], [a, n]], [a, n, c]) == 1  # the longest history it extends
    assert continued_history([first_tab, second_tab], [d]) is None  # nobody's: a fresh object
    assert continued_history([[a, n, c]], [a, c]) is None  # not the latest removed: replayed afresh


class _Fake:
    """A stand-in for a prepared image: tensors of a known size and a count of encoded windows."""

    def __init__(self, megabytes: float) -> None:
        self.image = torch.zeros(int(megabytes * 250_000))  # float32: 4 bytes a voxel
        self.embeddings = []
        self.num_encoded = 1


def test_image_cache_evicts_the_least_recently_used_and_logs_it(tmp_path, caplog):
    paths = []
    for name in "abcd":
        paths.append(str(tmp_path / name))
        Path(paths[-1]).write_bytes(b"x")
    dropped = []
    cache = PreparedCache(lambda p: _Fake(1.0), max_images=2, on_evict=dropped.append)
    with caplog.at_level(logging.INFO, logger="lib.cache"):
        for i in (0, 1, 0, 2):
            cache.get(paths[i])
    assert dropped == [paths[1]] and paths[1] in caplog.text and "evicted" in caplog.text
    assert cache.get(paths[0])[1] is False and cache.encoder_calls == 3
    by_mb = PreparedCache(lambda p: _Fake(1.0), max_images=10, max_mb=2.5)
    for path in paths:
        by_mb.get(path)
    assert len(by_mb) == 2 and by_mb.megabytes <= 2.5
