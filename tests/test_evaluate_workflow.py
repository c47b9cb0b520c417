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
"""evaluate.json (over train.json): N-click Dice/NSD per case, class and click, reports, AUC, best-over-clicks."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from monai.transforms import LoadImage
from test_train_workflow import CASES, TINY_NET


def test_reports_cover_every_case_class_and_click(evaluated):
    out = evaluated / "eval"
    with open(out / "nclick_metrics.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * 2 * 3  # cases x classes (2, 5) x clicks
    assert {(r["case"], r["class_id"]) for r in rows} == {
        (c, k) for c in ("example_ct_sm", "example_mr_sm") for k in ("2", "5")
    }
    summary = json.loads((out / "nclick_summary.json").read_text(encoding="utf-8"))
    assert summary["num_curves"] == 4 and summary["num_clicks"] == 3
    for click in (1, 2, 3):
        dice = [float(r["dice"]) for r in rows if int(r["click"]) == click]
        assert summary["per_click"]["dice"][click - 1] == pytest.approx(np.mean(dice))
    curves = {}
    for r in rows:
        curves.setdefault((r["case"], r["class_id"]), []).append(float(r["dice"]))
    auc = np.mean([(c[0] + c[1]) / 2 + (c[1] + c[2]) / 2 for c in curves.values()])
    assert summary["dice_auc"] == pytest.approx(auc) and summary["dice_auc_normalised"] == pytest.approx(auc / 2)
    assert summary["best_dice"] == pytest.approx(np.mean([max(c) for c in curves.values()]))
    assert all(0.0 <= float(r["nsd"]) <= 1.0 for r in rows)
    assert (out / "nclick_dice.png").stat().st_size > 1000


def test_dice_is_computed_on_the_original_grid(evaluated):
    """Replay one curve with the same simulation and check the reported Dice against the original-grid label."""
    from scripts.evaluation import simulate_clicks
    from scripts.inference import ClickWindowInferer
    from scripts.networks import SAMMed3D, load_checkpoint

    load = LoadImage(image_only=True, ensure_channel_first=True, dtype=None)
    image, label = load(CASES[0]["image"]), load(CASES[0]["label"])
    network = load_checkpoint(SAMMed3D(**TINY_NET), evaluated / "models" / "model.pt").eval()
    prepared = ClickWindowInferer().prepare(image, network)
    with torch.no_grad():
        steps = simulate_clicks(prepared, label, 2, 3, rng=np.random.RandomState(233))
    truth = label.as_tensor()[0].numpy() == 2
    with open(evaluated / "eval" / "nclick_metrics.csv", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["case"] == "example_ct_sm" and r["class_id"] == "2"]
    for step, row in zip(steps, rows):
        assert step["mask"].shape == truth.shape == tuple(image.shape[1:])
        expected = 2 * (step["mask"] & truth).sum() / (step["mask"].sum() + truth.sum())
        assert float(row["dice"]) == pytest.approx(expected)
