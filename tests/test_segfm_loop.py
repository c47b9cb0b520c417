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
"""The SegFM loop replays the official evaluator's run: given the predictions the stand-in predictor made there, it
passes the same inputs (clicks, order, prev_pred) at every step and reports the same figures, to 1e-6."""

from __future__ import annotations

import numpy as np
import pytest
from test_segfm_metrics import EVAL, OFFICIAL, TOLERANCE, load

from scripts.evaluation.segfm_loop import nifti_case, segfm_loop


@pytest.mark.parametrize("case", sorted(OFFICIAL))
def test_loop_replays_the_official_run(case):
    gts, _, steps = load(case)
    with np.load(EVAL / "imgs" / f"{case}.npz", allow_pickle=True) as f:
        arrays = {k: f[k] for k in f.files}
    calls = []

    def stand_in(inputs: dict) -> np.ndarray:
        step = len(calls) + (0 if steps["called"][0] else 1)
        calls.append(step)
        if step > 0:  # the clicks of this step are the evaluator's, and prev_pred is the previous output
            for k in range(gts.max()):
                kind = inputs["clicks_order"][k][-1]
                expected = steps["click_is_fg"][step, k]
                assert kind == {1: "fg", 0: "bg", -1: None}[int(expected)], (step, k)
                if kind is not None:
                    assert inputs["clicks"][k][kind][-1] == steps["click_zyx"][step, k].tolist()
            np.testing.assert_array_equal(inputs["prev_pred"], steps["segs"][step - 1])
        else:
            assert "clicks" not in inputs and "boxes" in inputs
        return steps["segs"][step]

    record = segfm_loop(case, arrays, gts, stand_in)
    assert len(calls) == int(steps["called"].sum())
    row = OFFICIAL[case]
    for key in [f"{m}_{s}" for m in ("DSC", "NSD") for s in range(1, 7)] + [
        "DSC_AUC",
        "NSD_AUC",
        "DSC_Final",
        "NSD_Final",
    ]:
        assert abs(record[key] - float(row[key])) <= TOLERANCE, key
    assert record["num_class"] == int(row["num_class"])


def test_nifti_case_layout():
    image = np.arange(4 * 5 * 6, dtype=np.float64).reshape(4, 5, 6)
    label = np.zeros((4, 5, 6), np.uint8)
    label[1:3, 2:4, 1:5] = 7
    arrays, gts = nifti_case(image, label, (1.0, 2.0, 3.0), [7])
    assert arrays["imgs"].shape == gts.shape == (6, 5, 4) and arrays["imgs"].dtype == np.uint8
    assert arrays["spacing"].tolist() == [1.0, 2.0, 3.0] and set(np.unique(gts)) == {0, 1}
    (box,) = arrays["boxes"]
    assert (box["z_min"], box["z_max"], box["z_mid_y_min"], box["z_mid_y_max"]) == (1, 4, 2, 3)
    assert (box["z_mid_x_min"], box["z_mid_x_max"]) == (1, 2)
    with pytest.raises(ValueError, match="class 9 is not in the label"):
        nifti_case(image, label, (1.0, 2.0, 3.0), [9])
