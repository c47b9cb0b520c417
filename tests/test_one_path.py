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
"""One interactive path: the session equals the command line, voxel for voxel, and costs what it should."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import BUNDLE
from monai.bundle import ConfigWorkflow
from monai.data import MetaTensor
from test_inference import DEMO, MR, OracleNetwork, deepest_voxel, dice, load, marked

from scripts import InteractiveSession, load_network
from scripts.geometry import reorient_to_ras, resample_to_spacing
from scripts.geometry.window import grid_part, window_points
from scripts.inference import ObjectTrack, PreparedImage

CONFIGS = BUNDLE / "configs"
LIVER, SPLEEN = 5, 1


class CountingOracle(OracleNetwork):
    """The oracle, counting decoder passes and keeping the mask prompt of each one."""

    mask_input_size = (32, 32, 32)

    def __init__(self) -> None:
        super().__init__()
        self.decoded = 0
        self.mask_prompts: list = []

    def decode(self, embedding, points, point_labels, mask_prompt=None):
        self.decoded += 1
        self.mask_prompts.append(None if mask_prompt is None else mask_prompt.clone())
        return super().decode(embedding, points, point_labels, mask_prompt)


def command_line(tmp_path, image_file, objects: dict, network, max_windows: int = 8) -> np.ndarray:
    """``inference.json`` run in-process as ``monai.bundle run`` runs it, with ``network`` as the network."""
    workflow = ConfigWorkflow(
        workflow_type="infer",
        config_file=str(CONFIGS / "inference.json"),
        meta_file=str(CONFIGS / "metadata.json"),
        logging_file=str(CONFIGS / "logging.conf"),
        bundle_root=str(BUNDLE),
        output_dir=str(tmp_path),
        network_def=network,
        max_windows=max_windows,
        input_dict={"image": str(image_file), "objects": objects},
    )
    workflow.initialize()
    workflow.run()
    workflow.finalize()
    written = tmp_path / f"{image_file.name.split('.')[0]}_seg.nii.gz"
    return np.asarray(nib.load(str(written)).dataobj)


def save(image: MetaTensor, path) -> None:
    nib.save(nib.Nifti1Image(image[0].numpy().astype(np.float32), image.affine.numpy()), str(path))


def session_label_map(session: InteractiveSession, objects: dict) -> np.ndarray:
    """The objects of a request clicked one after another in a session, painted as the command line paints them."""
    out = np.zeros(session.image.shape[1:], dtype=np.uint8)
    for spec in objects.values():
        session.reset()
        for point, label in zip(spec["points"], spec["point_labels"]):
            mask = session.click(point, positive=bool(label))
        out[mask] = spec["label"]
    return out


@pytest.fixture(scope="module")
def liver_case(tmp_path_factory):
    """The demo CT with its liver marked for the oracle (the liver is longer than one 19.2 cm window)."""
    image, label = load(DEMO[0]), load(DEMO[1])[0].numpy()
    path = tmp_path_factory.mktemp("liver") / "liver_ct.nii.gz"
    save(marked(image, label == LIVER), path)
    return path, label == LIVER


def test_session_equals_command_line_on_an_object_over_several_windows(liver_case, tmp_path):
    path, liver = liver_case
    far = deepest_voxel(liver & (np.arange(liver.shape[0])[:, None, None] < 55))
    outside = [int(v) for v in np.argwhere(~liver)[len(np.argwhere(~liver)) // 2]]
    objects = {"liver": {"points": [deepest_voxel(liver), far, outside], "point_labels": [1, 1, 0], "label": LIVER}}
    cli = command_line(tmp_path, path, objects, OracleNetwork())

    oracle = CountingOracle()
    session = InteractiveSession(oracle, str(path))
    ours = session_label_map(session, objects)
    np.testing.assert_array_equal(ours, cli)
    assert len(session.track.windows) > 1, "the liver should be followed into more than one window"
    assert dice(ours == LIVER, liver) > 0.95

    # a further click re-encodes nothing and costs one decoder pass per window that holds it
    encoded, decoded = oracle.encoded, oracle.decoded
    click = deepest_voxel(liver)
    holding = sum(
        window_points(session.prepared.to_ras(np.asarray(click)), w.start, session.prepared.roi_size)[1][0]
        for w in session.track.windows
    )
    windows_before = len(session.track.windows)
    session.click(click)
    assert oracle.encoded == encoded, "a click in encoded windows must not re-encode"
    assert oracle.decoded == decoded + holding + (len(session.track.windows) - windows_before)


def test_session_equals_command_line_on_a_non_ras_image(tmp_path):
    """The MRI is LPS: clicks and masks stay in its own voxel order in both paths."""
    image, label = load(MR[0]), load(MR[1])[0].numpy()
    kidney = label == 2
    path = tmp_path / "mr_marked.nii.gz"
    save(marked(image, kidney), path)
    objects = {"kidney": {"points": [deepest_voxel(kidney), deepest_voxel(kidney)], "point_labels": [1, 0], "label": 2}}
    cli = command_line(tmp_path / "out", path, objects, OracleNetwork())
    ours = session_label_map(InteractiveSession(OracleNetwork(), str(path)), objects)
    np.testing.assert_array_equal(ours, cli)
    assert dice(ours == 2, kidney) > 0.95


def test_session_equals_command_line_with_the_demo_model(tmp_path):
    """The README main job's objects, through the shipped demo model, in a session and on the command line."""
    objects = json.loads((CONFIGS / "inference.json").read_text(encoding="utf-8"))["input_dict"]["objects"]
    network = load_network(BUNDLE / "models")
    cli = command_line(tmp_path, DEMO[0], objects, network)
    ours = session_label_map(InteractiveSession(network, str(DEMO[0])), objects)
    np.testing.assert_array_equal(ours, cli)
    assert set(np.unique(cli)) == {0, 2, 21}


def test_several_objects_share_the_encoded_windows(liver_case):
    path, liver = liver_case
    oracle = CountingOracle()
    session = InteractiveSession(oracle, str(path))
    session.click(deepest_voxel(liver))
    encoded, decoded = oracle.encoded, oracle.decoded
    session.reset()
    session.click(deepest_voxel(liver))  # the second object starts where the first did: its windows are encoded
    assert oracle.encoded == encoded and oracle.decoded == 2 * decoded


def test_session_takes_numpy_arrays_with_their_geometry():
    image, label = load(MR[0]), load(MR[1])[0].numpy()
    data = marked(image, label == 2)[0].numpy()
    click = deepest_voxel(label == 2)
    from_file = InteractiveSession(OracleNetwork(), marked(image, label == 2)).click(click)
    from_affine = InteractiveSession(OracleNetwork(), data, affine=image.affine.numpy()).click(click)
    np.testing.assert_array_equal(from_affine, from_file)
    # the MRI's axes point to L, P, S: the same array described by its spacing and axis codes (origin aside)
    spacing = np.linalg.norm(image.affine.numpy()[:3, :3], axis=0)
    from_spacing = InteractiveSession(OracleNetwork(), data, spacing=spacing, axcodes="LPS").click(click)
    np.testing.assert_array_equal(from_spacing, from_file)
    with pytest.raises(ValueError, match="needs its geometry"):
        InteractiveSession(OracleNetwork(), data)
    with pytest.raises(ValueError, match="axcodes"):
        InteractiveSession(OracleNetwork(), data, spacing=spacing, axcodes="LPR")


def test_an_object_can_start_from_a_mask(liver_case):
    """The starting mask is each window's first mask prompt, stays the object outside its windows, and a first
    negative click subtracts from it; without a mask, a first negative click is refused."""
    path, liver = liver_case
    oracle = CountingOracle()
    session = InteractiveSession(oracle, str(path), max_windows=1)
    with pytest.raises(ValueError, match="first click on an object must be positive"):
        session.click(deepest_voxel(liver), positive=False)
    start = liver.copy()
    session.reset(mask=start)
    np.testing.assert_array_equal(session.mask, start)
    click = deepest_voxel(liver)
    mask = session.click(click, positive=False)
    (tracked,) = session.track.windows
    prompt = oracle.mask_prompts[-1]
    # the reference's whole-grid nearest resampling of the starting mask, cut to the window
    ras_start = reorient_to_ras(
        resample_to_spacing(
            MetaTensor(torch.from_numpy(start[None].astype(np.uint8)), affine=load(path).affine), mode="nearest"
        )
    )
    window_start = grid_part(ras_start[0].numpy() > 0, tracked.start, session.prepared.roi_size)
    assert prompt.shape == (1, 1, 32, 32, 32) and prompt.sum() > 0
    np.testing.assert_array_equal(prompt[0, 0].numpy() > 0.5, window_start[::4, ::4, ::4])  # nearest, as upstream
    # outside the window the object is still the starting mask
    outside = np.ones(liver.shape, dtype=bool)
    box, window = session.prepared.paste(np.ones(session.prepared.roi_size, bool), tracked.start)
    outside[box] &= ~window
    assert outside.any()
    np.testing.assert_array_equal(mask[outside], start[outside])
    assert session.undo() is not None and np.array_equal(session.mask, start)


def test_track_undo_returns_the_state_before(liver_case):
    path, liver = liver_case
    prepared = PreparedImage(load(path), OracleNetwork())
    track = ObjectTrack(prepared, max_windows=8)
    track.add_click(prepared.to_ras(np.asarray(deepest_voxel(liver))), 1)
    first, windows = track.original_mask(), len(track.windows)
    track.add_click(prepared.to_ras(np.asarray([60, 40, 60])), 0)
    assert track.undo() and len(track.windows) == windows
    np.testing.assert_array_equal(track.original_mask(), first)
    assert track.undo() and not track.undo() and not track.original_mask().any()


def test_mask_prompt_is_the_nearest_downsampled_window():
    """``F.interpolate(nearest)`` from 128 to 32 takes every 4th voxel: the check above rests on that."""
    grid = torch.rand(1, 1, 128, 128, 128) > 0.5
    down = F.interpolate(grid.float(), size=(32, 32, 32), mode="nearest")
    np.testing.assert_array_equal(down[0, 0].numpy() > 0.5, grid[0, 0, ::4, ::4, ::4].numpy())
