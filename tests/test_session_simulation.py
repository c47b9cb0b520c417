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
"""The interactive session (click / undo / reset, encoder cache) and label-driven click simulation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import REFERENCE
from monai.data import MetaTensor
from test_inference import CT, MR, OracleNetwork, deepest_voxel, dice, load, marked

from scripts import ClickWindowInferer, InteractiveSession, simulate_clicks

ORACLE = ClickWindowInferer(interpolation="nearest")


class CountingOracle(OracleNetwork):
    def __init__(self) -> None:
        super().__init__()
        self.decoded = 0

    def decode(self, embedding, points, point_labels, mask_prompt=None):
        self.decoded += 1
        return super().decode(embedding, points, point_labels, mask_prompt)


@pytest.fixture(scope="module")
def kidney_case():
    image, label = load(CT[0]), load(CT[1])[0].numpy()
    return marked(image, label == 2), label == 2


def test_session_click_undo_reset(kidney_case):
    image, kidney = kidney_case
    oracle = CountingOracle()
    session = InteractiveSession(oracle, image, inferer=ORACLE)
    click = deepest_voxel(kidney)
    first = session.click(click)
    assert first.shape == kidney.shape and dice(first, kidney) >= 0.999
    second = session.click([click[0], click[1] + 2, click[2]], positive=False)
    assert oracle.encoded == 1, "a further click in the same window must not re-encode"
    assert oracle.decoded == 2, "a further click costs exactly one decoder call"
    assert session.num_clicks == 2 and second.shape == kidney.shape
    np.testing.assert_array_equal(session.undo(), first)
    assert session.num_clicks == 1
    session.reset()
    assert session.num_clicks == 0 and session.undo() is None
    again = session.click(click)
    np.testing.assert_array_equal(again, first)
    assert oracle.encoded == 1, "the window stays cached across reset"


def test_session_refuses_bad_clicks(kidney_case):
    image, kidney = kidney_case
    session = InteractiveSession(OracleNetwork(), image, inferer=ORACLE)
    with pytest.raises(ValueError, match="first click on an object must be positive"):
        session.click(deepest_voxel(kidney), positive=False)
    with pytest.raises(ValueError, match="lies outside the image"):
        session.click([0, 0, 99])
    assert session.num_clicks == 0


def test_session_accepts_a_path():
    session = InteractiveSession(OracleNetwork(), str(MR[0]), inferer=ORACLE)
    assert tuple(session.image.shape[1:]) == (117, 91, 20)


@pytest.mark.parametrize("tag", ["case_perm_cls1", "case_perm_cls2", "case_flip_cls1", "case_flip_cls2"])
def test_first_simulated_click_matches_reference(tag):
    """With the reference's seed, the first click is the reference's (PREPROC_PARITY.md, step 6)."""
    case, cls = tag.rsplit("_cls", 1)
    with np.load(REFERENCE / "preproc_vectors.npz") as vectors:
        image_data = vectors[f"{case}_input_image"]
        label_data = vectors[f"{case}_input_label"]
        affine = vectors[f"{case}_input_affine"]
        expected = vectors[f"{tag}_first_click"]
    image = MetaTensor(torch.from_numpy(image_data)[None], affine=torch.from_numpy(affine))
    label = MetaTensor(torch.from_numpy(label_data.astype(np.int64))[None], affine=torch.from_numpy(affine))
    prepared = ORACLE.prepare(image, OracleNetwork())
    (result,) = simulate_clicks(prepared, label, int(cls), num_clicks=1)
    assert result["roi_point"] == [int(v) for v in expected]
    assert result["point_label"] == 1


def test_simulated_clicks_follow_the_error_region(kidney_case):
    image, kidney = kidney_case
    label = MetaTensor(torch.from_numpy(kidney.astype(np.int64) * 2)[None], affine=image.affine)
    prepared = ORACLE.prepare(image, OracleNetwork())
    results = simulate_clicks(prepared, label, 2, num_clicks=3)
    assert [r["click"] for r in results] == [1, 2, 3]
    for r in results:  # the oracle is perfect after one click: every later click lands on the target again
        assert r["point_label"] == 1 and dice(r["mask"], kidney) >= 0.999
        assert kidney[tuple(int(round(v)) for v in r["point"])]


def test_simulation_refuses_bad_labels(kidney_case):
    image, kidney = kidney_case
    prepared = ORACLE.prepare(image, OracleNetwork())
    label = MetaTensor(torch.from_numpy(kidney.astype(np.int64))[None], affine=image.affine)
    with pytest.raises(ValueError, match="class 7 is absent from the label"):
        simulate_clicks(prepared, label, 7, 1)
    moved_affine = image.affine.clone()
    moved_affine[0, 3] += 10.0
    shifted = MetaTensor(label.as_tensor(), affine=moved_affine)
    with pytest.raises(ValueError, match="differs from the image's"):
        simulate_clicks(prepared, shifted, 1, 1)
