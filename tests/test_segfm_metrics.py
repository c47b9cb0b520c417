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
"""The SegFM scores and click rule equal the official evaluator's on its own run (tests/data/segfm/README.md, B):
every step's DSC and NSD and the AUCs to 1e-6, and all 70 clicks."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from conftest import DATA

from scripts.evaluation.segfm_metrics import segfm_auc, segfm_click, segfm_scores, surfel_dice

EVAL = DATA / "segfm" / "eval"
OFFICIAL = {
    row["CaseName"][: -len(".npz")]: row
    for row in csv.DictReader((EVAL / "segfmref_metrics.csv").read_text(encoding="utf-8").splitlines())
}
TOLERANCE = 1e-6


def load(case: str) -> tuple[np.ndarray, np.ndarray, dict]:
    with np.load(EVAL / "gts" / f"{case}.npz") as f:
        gts = f["gts"]
    with np.load(EVAL / "imgs" / f"{case}.npz", allow_pickle=True) as f:
        spacing = f["spacing"]
    with np.load(EVAL / "steps" / f"{case}.npz") as f:
        steps = {k: f[k] for k in f.files}
    return gts, spacing, steps


@pytest.mark.parametrize("case", sorted(OFFICIAL))
def test_scores_equal_the_official_evaluator(case):
    gts, spacing, steps = load(case)
    row = OFFICIAL[case]
    dscs, nsds = [], []
    for s in range(6):
        dsc, nsd = segfm_scores(gts, steps["segs"][s], spacing) if steps["called"][s] else (0.0, 0.0)
        assert abs(dsc - float(row[f"DSC_{s + 1}"])) <= TOLERANCE, f"DSC_{s + 1}"
        assert abs(nsd - float(row[f"NSD_{s + 1}"])) <= TOLERANCE, f"NSD_{s + 1}"
        dscs.append(dsc)
        nsds.append(nsd)
    assert abs(segfm_auc(dscs) - float(row["DSC_AUC"])) <= TOLERANCE
    assert abs(segfm_auc(nsds) - float(row["NSD_AUC"])) <= TOLERANCE
    assert abs(dscs[-1] - float(row["DSC_Final"])) <= TOLERANCE and abs(nsds[-1] - float(row["NSD_Final"])) <= TOLERANCE


@pytest.mark.parametrize("case", sorted(OFFICIAL))
def test_clicks_equal_the_official_evaluator(case):
    gts, _, steps = load(case)
    for s in range(1, 6):
        for k in range(steps["click_zyx"].shape[1]):
            click = segfm_click(steps["segs"][s - 1], gts, k + 1)
            if steps["click_is_fg"][s, k] == -1:
                assert click is None, (s, k)
            else:
                assert click == (tuple(steps["click_zyx"][s, k].tolist()), bool(steps["click_is_fg"][s, k])), (s, k)


def test_nsd_uses_the_spacing_as_stored():
    """CT_PelvisAniso (spacing (2.0, 2.5, 6.0) for (z, y, x) arrays, as the evaluator uses it): the physical order
    gives another NSD, so the order is pinned by the fixture."""
    gts, spacing, steps = load("CT_PelvisAniso")
    stored = np.mean([surfel_dice(gts == k, steps["segs"][5] == k, spacing, 2.0) for k in (1, 2, 3)])
    physical = np.mean([surfel_dice(gts == k, steps["segs"][5] == k, spacing[::-1], 2.0) for k in (1, 2, 3)])
    assert abs(stored - float(OFFICIAL["CT_PelvisAniso"]["NSD_6"])) <= TOLERANCE
    assert abs(physical - stored) > 0.1


def test_surfel_dice_edge_cases():
    a = np.zeros((6, 6, 6), bool)
    a[2:4, 2:4, 2:4] = True
    assert surfel_dice(a, a, (1.0, 1.0, 1.0), 0.0) == pytest.approx(1.0)
    assert surfel_dice(a, np.zeros_like(a), (1.0, 1.0, 1.0), 2.0) == 0.0
    assert np.isnan(surfel_dice(np.zeros_like(a), np.zeros_like(a), (1.0, 1.0, 1.0), 2.0))
