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
"""``protocol: segfm`` of evaluate.json (over train.json): npz and NIfTI cases, CSV + JSON + plot, figures
consistent with the challenge's rules."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
from conftest import BUNDLE, DATA, run_tiny_evaluation
from test_segfm_metrics import EVAL
from test_train_workflow import CASES


def check_reports(folder, num_cases: int, num_classes: list[int]) -> list[dict]:
    rows = list(csv.DictReader((folder / "segfm_metrics.csv").read_text(encoding="utf-8").splitlines()))
    assert len(rows) == num_cases and (folder / "segfm_dice.png").stat().st_size > 0
    report = json.loads((folder / "segfm_metrics.json").read_text(encoding="utf-8"))
    for row, record, k in zip(rows, report["cases"], num_classes):
        dsc = [float(row[f"DSC_{s}"]) for s in range(1, 7)]
        nsd = [float(row[f"NSD_{s}"]) for s in range(1, 7)]
        assert all(0 <= v <= 1 for v in dsc + nsd)
        assert all(n == 0 for d, n in zip(dsc, nsd) if d <= 0.2)  # NSD only where DSC > 0.2
        assert float(row["DSC_AUC"]) == pytest.approx(np.trapezoid(dsc[1:]), abs=1e-12)
        assert float(row["NSD_Final"]) == nsd[-1] and int(row["num_class"]) == k
        assert record["clicks"][0] is None and len(record["clicks"]) == 6
        assert all(len(step) == k for step in record["clicks"][1:])  # one click (or None) per class per step
    return rows


def test_segfm_protocol_on_npz_cases(tmp_path):
    cases, gts = tmp_path / "cases", tmp_path / "gts"
    cases.mkdir()
    gts.mkdir()
    for name in ("MR_AbdomenSm", "CT_VesselsSm"):  # one with boxes, one without
        shutil.copy(EVAL / "imgs" / f"{name}.npz", cases)
        shutil.copy(EVAL / "gts" / f"{name}.npz", gts)
    run_tiny_evaluation(tmp_path, protocol="segfm", segfm_cases=str(cases), segfm_gts=str(gts))
    rows = check_reports(tmp_path / "eval", 2, [3, 3])
    vessels = rows[0]
    assert vessels["case"] == "CT_VesselsSm" and float(vessels["DSC_1"]) == 0 and float(vessels["RunningTime_1"]) == 0


def test_segfm_protocol_on_nifti_cases(tmp_path):
    run_tiny_evaluation(tmp_path, cases=CASES[:1], protocol="segfm", eval_class_ids=[2, 3], segfm_rule="upstream")
    check_reports(tmp_path / "eval", 1, [2])


def test_unknown_protocol_is_refused(tmp_path):
    with pytest.raises(SystemExit, match="protocol must be nclick or segfm"):
        run_tiny_evaluation(tmp_path, protocol="segfm2")


@pytest.mark.slow
@pytest.mark.parametrize("rule", ["session", "upstream"])
def test_demo_model_figures_equal_the_official_evaluator(tmp_path, rule):
    """The official evaluator ran this predictor (demo model) on three cases (tests/data/segfm/README.md, C): the
    in-process protocol gives the same figures."""
    from scripts import load_network
    from scripts.evaluation import SegfmEvaluation
    from scripts.inference import ClickWindowInferer

    official = DATA / "segfm" / "demo_official" / f"{rule}_metrics.csv"
    rows = {r["CaseName"][: -len(".npz")]: r for r in csv.DictReader(official.read_text(encoding="utf-8").splitlines())}
    cases, gts = tmp_path / "cases", tmp_path / "gts"
    cases.mkdir()
    gts.mkdir()
    for name in rows:
        shutil.copy(EVAL / "imgs" / f"{name}.npz", cases)
        shutil.copy(EVAL / "gts" / f"{name}.npz", gts)
    network = load_network(BUNDLE / "models")
    SegfmEvaluation(
        network, ClickWindowInferer(), str(tmp_path), cases_dir=str(cases), gts_dir=str(gts), rule=rule
    ).run()
    ours = {r["case"]: r for r in json.loads((tmp_path / "segfm_metrics.json").read_text(encoding="utf-8"))["cases"]}
    keys = [f"{m}_{s}" for m in ("DSC", "NSD") for s in range(1, 7)] + ["DSC_AUC", "NSD_AUC", "DSC_Final", "NSD_Final"]
    for name, row in rows.items():
        for key in keys:
            assert abs(ours[name][key] - float(row[key])) <= 1e-6, (name, key)
