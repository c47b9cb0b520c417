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
"""Unit tests of the training and evaluation pieces: click sampling, datalists, transforms, engines, metrics."""

from __future__ import annotations

import json
import math
import shutil

import nibabel as nib
import numpy as np
import pytest
import torch
from conftest import BUNDLE, DATA
from monai.data import MetaTensor
from monai.transforms import LoadImage

from scripts.evaluation import curve_auc, dice_score, summarise, surface_dice, write_reports
from scripts.geometry import reference_preprocess, reorient_to_ras, resample_to_spacing
from scripts.networks import SAMMed3D
from scripts.training import (
    ClickSimulation,
    RandClassWindowd,
    RoundsLoss,
    initial_network,
    load_datalist,
    param_groups,
    prepare_datalist,
    sample_error_clicks,
    split_datalist,
)

TS = DATA / "totalsegmentator"
TINY = dict(
    encoder_embed_dim=24,
    encoder_depth=2,
    encoder_num_heads=2,
    encoder_global_attn_indexes=(1,),
    prompt_embed_dim=24,
    decoder_num_heads=2,
    decoder_mlp_dim=48,
)


# ---------------------------------------------------------------- click sampling
def test_error_clicks_are_labelled_by_the_error_they_hit():
    target = torch.zeros(64, 1, 12, 12, 12, dtype=torch.bool)
    target[:, :, 2:6, 2:6, 2:6] = True
    prediction = torch.zeros_like(target)
    prediction[:, :, 2:6, 2:6, 2:4] = True  # half of the object found
    prediction[:, :, 8:10, 8:10, 8:10] = True  # and a false positive blob
    points, labels = sample_error_clicks(prediction, target, generator=torch.Generator().manual_seed(0))
    assert points.shape == (64, 1, 3) and labels.shape == (64, 1)
    idx = points[:, 0].long()
    at = (torch.arange(64), 0, idx[:, 0], idx[:, 1], idx[:, 2])
    assert not (prediction[at] == target[at]).any(), "every click lies in the error region"
    assert torch.equal(labels[:, 0].bool(), target[at]), "positive exactly on missed voxels"
    assert labels.sum() not in (0, 64), "both kinds of error are drawn"


def test_first_and_perfect_clicks_are_positive_on_the_target():
    target = torch.zeros(8, 1, 10, 10, 10)
    target[:, :, 3:5, 3:5, 3:5] = 1
    for prediction in (torch.zeros_like(target), target.clone()):
        points, labels = sample_error_clicks(prediction, target)
        idx = points[:, 0].long()
        assert (labels == 1).all()
        assert target[torch.arange(8), 0, idx[:, 0], idx[:, 1], idx[:, 2]].bool().all()


def test_center_rule_clicks_deep_inside_the_larger_error():
    target = torch.zeros(1, 1, 21, 21, 21)
    target[0, 0, 2:19, 2:19, 2:19] = 1  # a big missed cube, nothing predicted
    prediction = torch.zeros_like(target)
    prediction[0, 0, 0, 0, 0] = 1  # a one-voxel false positive (the smaller error)
    for seed in range(5):
        points, labels = sample_error_clicks(prediction, target, "center", torch.Generator().manual_seed(seed))
        assert labels.item() == 1
        assert (points[0, 0] - 10).abs().max() <= 4, points  # near the centre of the cube, not on its border


def test_click_sampling_rejects_bad_input():
    with pytest.raises(ValueError, match="unknown click rule"):
        sample_error_clicks(torch.zeros(1, 1, 4, 4, 4), torch.ones(1, 1, 4, 4, 4), "nearest")
    with pytest.raises(ValueError, match="no target voxel"):
        sample_error_clicks(torch.zeros(1, 1, 4, 4, 4), torch.zeros(1, 1, 4, 4, 4))


# ---------------------------------------------------------------- datalists
def _nifti(path, data, affine=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.asarray(data), np.diag([2.0, 2.0, 3.0, 1.0]) if affine is None else affine), path)
    return path


def _label(values=(1, 2)):
    data = np.zeros((12, 10, 8), np.uint8)
    for n, v in enumerate(values):
        data[1 + 3 * n : 3 + 3 * n, 2:6, 2:5] = v
    return data


def test_nnunet_folder_msd_json_and_upstream_layout(tmp_path):
    image = np.random.RandomState(0).rand(12, 10, 8).astype(np.float32)
    nnunet = tmp_path / "Dataset001_Toy"
    for case in ("a", "b"):
        _nifti(nnunet / "imagesTr" / f"{case}_0000.nii.gz", image)
        _nifti(nnunet / "labelsTr" / f"{case}.nii.gz", _label((1, 3)))
    items = prepare_datalist(str(nnunet))
    assert [i["case"] for i in items] == ["Dataset001_Toy/a", "Dataset001_Toy/b"]
    assert all(i["classes"] == [1, 3] for i in items)
    assert prepare_datalist(str(nnunet), class_ids=[3])[0]["classes"] == [3]

    upstream = tmp_path / "data"
    for target in ("liver", "kidney"):
        _nifti(upstream / target / "ct_Toy" / "imagesTr" / "c1.nii.gz", image)
        _nifti(upstream / target / "ct_Toy" / "labelsTr" / "c1.nii.gz", _label((1,)))
    items = prepare_datalist(str(upstream))
    assert len(items) == 2 and all(i["classes"] == [1] for i in items)
    assert {i["case"] for i in items} == {"ct_Toy/c1"}
    assert {str(i["image"]).split("/")[-4] for i in items} == {"liver", "kidney"}

    datalist = tmp_path / "datalist.json"
    datalist.write_text(
        json.dumps(
            {
                "training": [
                    {"image": "data/liver/ct_Toy/imagesTr/c1.nii.gz", "label": "data/liver/ct_Toy/labelsTr/c1.nii.gz"}
                ]
            }
        ),
        encoding="utf-8",
    )
    items = load_datalist(str(datalist))
    assert items[0]["image"] == str(upstream / "liver/ct_Toy/imagesTr/c1.nii.gz")


def test_bad_datalists_fail_before_training(tmp_path):
    image = np.zeros((12, 10, 8), np.float32)
    with pytest.raises(ValueError, match="empty"):
        prepare_datalist([])
    img = _nifti(tmp_path / "img.nii.gz", image)
    shifted = np.diag([2.0, 2.0, 3.0, 1.0])
    shifted[0, 3] = 5.0
    off_grid = _nifti(tmp_path / "off.nii.gz", _label(), affine=shifted)
    with pytest.raises(ValueError, match="not on the grid"):
        prepare_datalist([{"image": str(img), "label": str(off_grid)}])
    wrong_shape = _nifti(tmp_path / "small.nii.gz", _label()[:-1])
    with pytest.raises(ValueError, match="not on the grid"):
        prepare_datalist([{"image": str(img), "label": str(wrong_shape)}])
    good = _nifti(tmp_path / "lab.nii.gz", _label((1, 2)))
    with pytest.raises(ValueError, match=r"class\(es\) \[7\] are missing from every case"):
        prepare_datalist([{"image": str(img), "label": str(good)}], class_ids=[1, 7])
    with pytest.raises(ValueError, match="no imagesTr"):
        prepare_datalist(str(tmp_path))


def test_split_datalist_keeps_cases_apart():
    items = [{"case": str(i)} for i in range(10)]
    train, val = split_datalist(items, 0.2)
    assert [i["case"] for i in val] == ["8", "9"] and len(train) == 8
    assert split_datalist(items[:1], 0.2) == (items[:1], items[:1])


# ---------------------------------------------------------------- transforms
@pytest.fixture(scope="module")
def ras_case():
    load = LoadImage(image_only=True, ensure_channel_first=True, dtype=None)
    image, label = load(str(TS / "example_ct_sm.nii.gz")), load(str(TS / "example_seg.nii.gz"))
    return (
        image,
        label,
        reorient_to_ras(resample_to_spacing(image)),
        reorient_to_ras(resample_to_spacing(label, mode="nearest")),
    )


def test_training_window_is_the_inference_preprocessing(ras_case):
    """With the box-centre window and no jitter, a training item equals the reference preprocessing bit for bit."""
    image, label, ras_image, ras_label = ras_case
    transform = RandClassWindowd(click_centre_prob=0.0, jitter=0)
    item = transform({"image": ras_image, "label": ras_label, "classes": [2]})
    binary = MetaTensor((label.as_tensor() == 2).to(torch.uint8), affine=label.affine)
    ref_image, ref_label = reference_preprocess(image, binary)
    assert item["class_id"] == 2 and "classes" not in item
    assert torch.equal(item["image"].as_tensor(), ref_image.as_tensor())
    assert torch.equal(item["label"].as_tensor(), ref_label.as_tensor().float())
    assert np.allclose(item["image"].affine.numpy(), ref_image.affine.numpy())


def test_random_windows_hold_the_drawn_class(ras_case):
    _, _, ras_image, ras_label = ras_case
    transform = RandClassWindowd(click_centre_prob=0.5, jitter=20)
    transform.set_random_state(0)
    drawn = set()
    for _ in range(12):
        item = transform({"image": ras_image, "label": ras_label, "classes": [2, 5, 7]})
        drawn.add(item["class_id"])
        assert item["image"].shape == (1, 128, 128, 128) and item["label"].any()
        assert item["image"].dtype == torch.float32 and float(item["image"].std()) < 50  # z-normalised, not HU
    assert drawn == {2, 5, 7}


# ---------------------------------------------------------------- engines
def test_click_simulation_rounds_clicks_and_gradients():
    torch.manual_seed(0)
    net = SAMMed3D(**TINY)
    sim = ClickSimulation(net, num_rounds=5, num_random_mask_only_rounds=1, last_round_mask_only=True)
    assert sim.mask_only_rounds() == {2, 4}  # round 2 is the only candidate in 2 .. num_rounds - 3
    calls = []
    original = net.decode
    net.decode = lambda emb, pts, lbl, mask: calls.append((None if pts is None else pts.shape, mask)) or original(
        emb, pts, lbl, mask
    )
    image = torch.randn(2, 1, 128, 128, 128)
    label = torch.zeros(2, 1, 128, 128, 128)
    label[:, :, 40:70, 50:80, 60:90] = 1
    out = sim(image, label)
    assert out.shape == (2, 5, 128, 128, 128)
    assert [c[0] for c in calls] == [(2, 1, 3), (2, 2, 3), None, (2, 3, 3), None]  # all clicks so far, as inference
    assert calls[0][1] is None and all(c[1] is not None for c in calls[1:])  # previous logits as mask prompt
    loss = RoundsLoss(torch.nn.BCEWithLogitsLoss())(out, label)
    expected = sum(torch.nn.functional.binary_cross_entropy_with_logits(out[:, r : r + 1], label) for r in range(5))
    assert torch.allclose(loss, expected)
    loss.backward()
    assert net.image_encoder.patch_embed.proj.weight.grad.abs().sum() > 0


def test_param_groups_and_strict_fine_tuning(tmp_path):
    net = SAMMed3D(**TINY)
    groups = param_groups(net, 1e-3, 0.1)
    assert [g["name"] for g in groups] == ["image_encoder", "prompt_encoder+mask_decoder"]
    assert groups[1]["lr"] == pytest.approx(1e-4)
    assert sum(len(g["params"]) for g in groups) == len(list(net.parameters()))
    frozen = param_groups(net, 1e-3, 0.1, freeze_encoder=True)
    assert len(frozen) == 1 and not any(p.requires_grad for p in net.image_encoder.parameters())
    other = tmp_path / "other.pt"
    torch.save(SAMMed3D(**{**TINY, "encoder_depth": 3, "encoder_global_attn_indexes": (2,)}).state_dict(), other)
    with pytest.raises(ValueError, match="does not match the network"):
        initial_network(SAMMed3D(**TINY), str(other))
    same = tmp_path / "same.pt"
    torch.save({"model_state_dict": net.state_dict(), "epoch": 3}, same)  # the official container
    assert initial_network(SAMMed3D(**TINY), str(same)) is not None


# ---------------------------------------------------------------- metrics
def test_dice_nsd_and_auc():
    a = np.zeros((20, 20, 20), bool)
    a[5:10, 5:10, 5:10] = True
    b = np.roll(a, 1, axis=0)
    assert dice_score(a, a) == 1.0 and dice_score(a, b) == pytest.approx(0.8)
    assert math.isnan(dice_score(a & False, a & False)) and dice_score(a, a & False) == 0.0
    assert surface_dice(a, b, (1.0, 1.0, 1.0)) == pytest.approx(1.0)  # one voxel off, 1 mm tolerance
    assert surface_dice(a, b, (3.0, 3.0, 3.0)) < 0.8  # 3 mm off
    big = np.zeros((60, 60, 60), bool)
    big[20:25, 20:25, 20:25] = True
    moved = np.roll(big, 2, axis=1)
    from monai.metrics import compute_surface_dice

    whole = compute_surface_dice(
        torch.from_numpy(np.stack([~big, big]))[None].float(),
        torch.from_numpy(np.stack([~moved, moved]))[None].float(),
        [1.5],
        spacing=[1.0, 0.8, 1.2],
    )
    assert surface_dice(big, moved, (1.0, 0.8, 1.2), 1.5) == pytest.approx(float(whole), abs=1e-6)  # crop exact
    assert curve_auc([0.5, 0.7, 0.9]) == pytest.approx((1.4, 0.7))  # (0.6 + 0.8), / 2
    assert curve_auc([0.4]) == (0.0, 0.4)


def test_summary_and_reports(tmp_path):
    records = [
        {"case": c, "class_id": k, "click": n, "point": [0, 0, 0], "point_label": 1, "dice": d, "nsd": d / 2}
        for c, k, dices in (("a", 1, [0.2, 0.6, 0.5]), ("b", 1, [0.4, 0.8, 0.9]), ("a", 2, [0.0, 0.3, 0.6]))
        for n, d in enumerate(dices, start=1)
    ]
    summary = summarise(records, best_over_clicks=True)
    assert summary["per_click"]["dice"] == pytest.approx([0.2, 1.7 / 3, 2.0 / 3])
    assert summary["dice_final"] == pytest.approx(2.0 / 3)
    assert summary["best_dice"] == pytest.approx((0.6 + 0.9 + 0.6) / 3)
    assert summary["dice_auc"] == pytest.approx(((0.4 + 0.55) + (0.6 + 0.85) + (0.15 + 0.45)) / 3)
    assert summary["dice_auc_normalised"] == pytest.approx(summary["dice_auc"] / 2)
    assert summary["per_class"]["2"]["dice_1"] == 0.0 and summary["per_class"]["1"]["num_cases"] == 2
    assert "best_dice" not in summarise(records)
    write_reports(records, str(tmp_path), prefix="x")
    assert (tmp_path / "x_dice.png").stat().st_size > 1000
    rows = (tmp_path / "x_metrics.csv").read_text(encoding="utf-8").splitlines()
    assert rows[0] == "case,class_id,click,point,point_label,dice,nsd" and len(rows) == 10
    assert json.loads((tmp_path / "x_summary.json").read_text(encoding="utf-8"))["num_curves"] == 3


def test_no_records_is_an_error():
    with pytest.raises(ValueError, match="no evaluation records"):
        summarise([])


def test_shipped_test_data_is_used_not_shared():
    assert (TS / "example_ct_sm.nii.gz").is_file() and BUNDLE.is_dir() and shutil.which("python") is not None


def test_epoch_checkpoints_beyond_keep_are_removed_also_those_of_the_resumed_run(tmp_path):
    from ignite.engine import Engine

    from scripts.training import AtomicCheckpointSaver

    for epoch in (1, 2, 3):  # what the killed run left
        torch.save({}, tmp_path / f"checkpoint_epoch={epoch}.pt")
    (tmp_path / "model.pt").write_bytes(b"kept")  # not an epoch checkpoint: never pruned
    engine = Engine(lambda engine, batch: None)
    saver = AtomicCheckpointSaver(
        save_dir=str(tmp_path),
        save_dict={"a": torch.nn.Linear(1, 1), "b": torch.nn.Linear(1, 1)},
        file_prefix="",
        save_interval=1,
        n_saved=2,
    )
    saver.attach(engine)
    engine.load_state_dict({"epoch": 3, "epoch_length": 1, "max_epochs": 5})  # resumed at epoch 3 of 5
    engine.run([0])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint_epoch=4.pt", "checkpoint_epoch=5.pt", "model.pt"]


def test_a_run_shorter_than_the_log_interval_logs_its_loss(tmp_path, caplog):
    from ignite.engine import Engine

    from scripts.training import TrainingMonitor

    def step(engine, batch):
        pred = torch.ones(1, 2, 4, 4, 4)
        return {"loss": torch.tensor(0.25 * batch), "pred": pred, "label": torch.ones(1, 1, 4, 4, 4)}

    engine = Engine(step)
    engine.optimizer = torch.optim.SGD(torch.nn.Linear(1, 1).parameters(), lr=0.1)
    TrainingMonitor(interval=10, tensorboard_dir=str(tmp_path)).attach(engine)
    with caplog.at_level("INFO"):
        engine.run([1, 3], max_epochs=1)  # 2 iterations, interval 10
    lines = [r.getMessage() for r in caplog.records if "| loss " in r.getMessage()]
    assert len(lines) == 1 and "loss 0.5000" in lines[0], lines  # the mean of the two steps
    assert list(tmp_path.glob("events.*"))
