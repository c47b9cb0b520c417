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
"""Class prompts (automatic mode) and the Auto3DSeg template ``sammed3d/``: units, bad input, AutoRunner end to end."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from conftest import BUNDLE, DATA, ROOT

from scripts.inference import AutomaticInferer
from scripts.networks import SAMMed3D, load_checkpoint
from scripts.training import ClickSimulation

TINY = {
    "encoder_embed_dim": 48,
    "encoder_depth": 2,
    "encoder_num_heads": 2,
    "encoder_global_attn_indexes": [1],
    "prompt_embed_dim": 48,
    "decoder_mlp_dim": 64,
}
CLASSES = [2, 5]  # right kidney and liver: in the CT and the MRI label maps


def tiny(num_class_prompts: int = 0) -> SAMMed3D:
    torch.manual_seed(0)
    return SAMMed3D(img_size=64, num_class_prompts=num_class_prompts, **TINY).eval()


def test_class_prompts_are_additive_and_checked(tmp_path):
    plain, with_classes = tiny(), tiny(num_class_prompts=6)
    assert "prompt_encoder.class_embeddings.weight" not in plain.state_dict()
    extra = set(with_classes.state_dict()) - set(plain.state_dict())
    assert extra == {"prompt_encoder.class_embeddings.weight"}
    path = tmp_path / "released.pt"
    torch.save(plain.state_dict(), path)
    with pytest.raises(ValueError, match="missing"):
        load_checkpoint(tiny(num_class_prompts=6), path)  # strict by default
    model = load_checkpoint(tiny(num_class_prompts=6), path, allow_new=("prompt_encoder.class_embeddings",))
    assert torch.equal(model.prompt_encoder.no_mask_embed.weight, plain.prompt_encoder.no_mask_embed.weight)
    state = plain.state_dict()
    state.pop("prompt_encoder.no_mask_embed.weight")
    torch.save(state, path)
    with pytest.raises(ValueError, match="no_mask_embed"):  # allow_new admits those keys and nothing else
        load_checkpoint(tiny(num_class_prompts=6), path, allow_new=("prompt_encoder.class_embeddings",))

    emb = with_classes.encode(torch.randn(1, 1, 64, 64, 64))
    a, _ = with_classes.decode(emb, class_ids=torch.tensor([2, 5]))
    b, _ = with_classes.decode(emb, class_ids=torch.tensor([5]))
    assert a.shape == (2, 1, 16, 16, 16) and torch.allclose(a[1:], b, atol=1e-5) and not torch.allclose(a[0], a[1])
    with pytest.raises(ValueError, match=r"in \[0, 5\]"):
        with_classes.decode(emb, class_ids=torch.tensor([6]))
    with pytest.raises(ValueError, match="num_class_prompts > 0"):
        plain.decode(emb, class_ids=torch.tensor([1]))


def test_click_simulation_trains_class_prompts():
    net = tiny(num_class_prompts=6).train()
    label = torch.zeros(1, 1, 64, 64, 64)
    label[:, :, 20:40, 20:40, 20:40] = 1
    for drop_class, drop_points, uses_points in ((0.0, 1.0, False), (0.0, 0.0, True)):
        sim = ClickSimulation(net, num_rounds=2, drop_class_prob=drop_class, drop_points_prob=drop_points)
        calls = []
        decode = net.decode
        net.decode = lambda *a, **k: calls.append((a, k)) or decode(*a, **k)
        try:
            out = sim(torch.randn(1, 1, 64, 64, 64), label, torch.tensor([5]))
        finally:
            del net.decode
        assert out.shape == (1, 2, 64, 64, 64)
        assert all(k["class_ids"].tolist() == [5] for _, k in calls)
        assert all((a[1] is not None) == uses_points for a, _ in calls[:1])
        net.zero_grad()
        out.mean().backward()
        assert net.prompt_encoder.class_embeddings.weight.grad[5].abs().sum() > 0
    with pytest.raises(ValueError, match="drop_class_prob"):
        ClickSimulation(net, drop_class_prob=1.5)


def test_automatic_inferer_original_grid_and_bad_class():
    from monai.transforms import LoadImage

    image = LoadImage(image_only=True, ensure_channel_first=True)(
        str(DATA / "totalsegmentator" / "example_mr_sm.nii.gz")
    )
    inferer = AutomaticInferer(spacing=(3.0, 3.0, 3.0), roi_size=(64, 64, 64))
    probabilities = inferer(image, tiny(num_class_prompts=6), CLASSES)
    assert probabilities.shape == (2, *image.shape[1:])
    assert np.allclose(probabilities.affine, image.affine) and 0 <= float(probabilities.min()) <= 1
    with pytest.raises(ValueError, match="trained for"):
        inferer(image, tiny(num_class_prompts=3), [5])


def _datalist(tmp_path: Path) -> tuple[Path, Path]:
    """Two labelled cases (CT fold 0, MRI fold 1) with labels cut down to CLASSES, and one testing image."""
    root = tmp_path / "data"
    root.mkdir()
    entries = []
    for fold, (image, label) in enumerate(
        (("example_ct_sm.nii.gz", "example_seg.nii.gz"), ("example_mr_sm.nii.gz", "example_seg_mr.nii.gz"))
    ):
        shutil.copy(DATA / "totalsegmentator" / image, root / image)
        seg = nib.load(str(DATA / "totalsegmentator" / label))
        values = np.asarray(seg.dataobj).astype(np.uint8)
        values[~np.isin(values, CLASSES)] = 0
        nib.save(nib.Nifti1Image(values, seg.affine), str(root / label))
        entries.append({"image": image, "label": label, "fold": fold})
    datalist = tmp_path / "datalist.json"
    datalist.write_text(
        json.dumps({"training": entries, "testing": [{"image": "example_ct_sm.nii.gz"}]}, indent=4), encoding="utf-8"
    )
    return datalist, root


def _input_cfg(tmp_path: Path) -> dict:
    datalist, root = _datalist(tmp_path)
    return {
        "modality": "CT",
        "datalist": str(datalist),
        "dataroot": str(root),
        "sigmoid": False,  # the template's scores: their argmax is the label map
        "sammed3d_bundle_root": str(BUNDLE),
        "sammed3d": {
            "target_spacing": [3.0, 3.0, 3.0],
            "roi_size": [64, 64, 64],
            "network": TINY,
            "train": {"num_workers": 0, "num_rounds": 2, "log_interval": 1, "min_class_volume_mm3": 0.0},
            "device": "cpu",
        },
    }


@pytest.fixture()
def template_algo():
    sys.path.insert(0, str(ROOT))
    try:
        from sammed3d.scripts.algo import Sammed3dAlgo, check_input

        yield Sammed3dAlgo, check_input
    finally:
        sys.path.remove(str(ROOT))


def test_template_rejects_bad_input(tmp_path, template_algo):
    algo_cls, check_input = template_algo
    cfg = _input_cfg(tmp_path)
    check_input(cfg)
    with pytest.raises(ValueError, match="no 'modality'"):
        check_input({k: v for k, v in cfg.items() if k != "modality"})
    unlabelled = tmp_path / "unlabelled.json"
    unlabelled.write_text(json.dumps({"training": [{"image": "example_ct_sm.nii.gz", "fold": 0}]}), encoding="utf-8")
    algo = algo_cls(template_path=str(ROOT))
    algo.data_list_file = {**cfg, "datalist": str(unlabelled)}
    with pytest.raises(ValueError, match="without a 'label'"):
        algo.pre_check_skip_algo()
    algo.data_list_file = {k: v for k, v in cfg.items() if k != "sammed3d_bundle_root"}
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("SAMMED3D_BUNDLE_ROOT", raising=False)
        with pytest.raises(ValueError, match="SAMMED3D_BUNDLE_ROOT"):
            algo.pre_check_skip_algo()


@pytest.mark.slow
def test_autorunner_end_to_end(tmp_path):
    from monai.apps.auto3dseg import AutoRunner
    from monai.bundle import ConfigParser

    templates = tmp_path / "templates"
    shutil.copytree(ROOT / "sammed3d", templates / "sammed3d")  # the template alone, as BundleGen copies it
    work = tmp_path / "work"
    runner = AutoRunner(
        work_dir=str(work), input=_input_cfg(tmp_path), algos=["sammed3d"], templates_path_or_url=str(templates)
    )
    runner.set_analyze_params({"do_ccp": False, "device": "cpu", "worker": 0})
    runner.set_num_fold(2)
    runner.set_training_params({"num_epochs": 1})
    runner.set_ensemble_method("AlgoEnsembleBestN", n_best=2)
    runner.run()

    for fold in (0, 1):
        hp = ConfigParser.load_config_file(str(work / f"sammed3d_{fold}" / "configs" / "hyper_parameters.yaml"))
        assert hp["class_ids"] == CLASSES and hp["num_class_prompts"] == 6 and hp["fold"] == fold
        assert hp["bundle_root"] == str(BUNDLE) and hp["modality"] == "CT"
        progress = ConfigParser.load_config_file(str(work / f"sammed3d_{fold}" / "progress.yaml"))
        assert 0.0 <= progress[-1]["best_avg_dice_score"] <= 1.0
        assert (work / f"sammed3d_{fold}" / "model" / "model.pt").is_file()
    outputs = sorted((work / "ensemble_output").glob("*.nii.gz"))
    assert len(outputs) == 1
    original = nib.load(str(DATA / "totalsegmentator" / "example_ct_sm.nii.gz"))
    written = nib.load(str(outputs[0]))
    assert written.shape == original.shape and np.allclose(written.affine, original.affine, atol=1e-4)
    values = np.unique(np.asarray(written.dataobj))
    assert set(values.tolist()) <= {0, *CLASSES}, f"not a label map of the classes: {values}"
