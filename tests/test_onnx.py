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
"""ONNX export (``python -m scripts.export --format onnx``) run by onnxruntime against the torch network.

The parity vectors are reproduced by the exported full-size network; the demo model's export drives an
``InteractiveSession`` on the shipped CT beside the torch one; the runner keeps the eager network's input checks.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import BUNDLE, parity_image
from logit_rule import assert_mask_within_rule, recording, window_differences
from monai.bundle import ConfigWorkflow

from scripts import InteractiveSession, load_network
from scripts.errors import user_error
from scripts.export import export
from scripts.networks import OnnxSAMMed3D, SAMMed3D
from scripts.networks.onnx_runner import ONNX_FILES
from scripts.onnx_export import export_onnx

ONE = torch.ones(1, 1, dtype=torch.long)
CT = BUNDLE / "sample_data" / "example_ct.nii.gz"


@pytest.fixture(scope="module")
def demo_onnx(tmp_path_factory) -> Iterator[tuple[SAMMed3D, OnnxSAMMed3D]]:
    """The demo model and its ONNX export made by the command line's function (with its own check on)."""
    folder = tmp_path_factory.mktemp("demo_onnx")
    paths = export(ckpt_dir=str(BUNDLE / "models"), out_dir=str(folder), format="onnx")
    assert sorted(Path(p).name for p in paths) == sorted(ONNX_FILES.values())
    torch.set_num_threads(2)
    yield load_network(BUNDLE / "models"), OnnxSAMMed3D(folder)
    shutil.rmtree(folder)


@pytest.fixture(scope="module")
def parity_onnx(parity_model, tmp_path_factory) -> Iterator[OnnxSAMMed3D]:
    """The full-size network with the parity weights, exported (0.4 GB)."""
    folder = tmp_path_factory.mktemp("parity_onnx")
    export_onnx(parity_model, folder, verify=False)
    yield OnnxSAMMed3D(folder, threads=2)
    shutil.rmtree(folder)


def unpack_mask(parity: dict, name: str, channels: int = 1) -> np.ndarray:
    return np.unpackbits(parity[name])[: channels * 128**3].reshape(1, channels, 128, 128, 128).astype(bool)


def test_onnx_reproduces_the_parity_vectors(parity_onnx, parity):
    """Calls A (first click), B (second click, A's logits as mask prompt), D (mask only); PARITY.md's tolerances.

    Call C (the multimask outputs, never trained upstream) is not exported.
    """
    image = parity_image()
    embeddings = parity_onnx.encode(image)
    np.testing.assert_allclose(embeddings.numpy(), parity["image_embeddings"], atol=1e-4, rtol=1e-4)
    click1, click2 = (torch.from_numpy(parity[k])[None, None] for k in ("click1", "click2"))
    calls = {
        "callA": (click1, torch.tensor([[1]]), None),
        "callB": (torch.cat([click1, click2], dim=1), torch.tensor([[1, 0]]), "callA"),
        "callD": (None, None, "callB"),
    }
    low = {}
    differing = {}
    for name, (points, labels, previous) in calls.items():
        mask = torch.zeros(1, 1, 32, 32, 32) if previous is None else low[previous]
        low[name], iou = parity_onnx.decode(embeddings, points, labels, mask)
        np.testing.assert_allclose(low[name].numpy(), parity[f"{name}_lowres_logits"], atol=2e-4, rtol=1e-3)
        np.testing.assert_allclose(iou.numpy(), parity[f"{name}_iou_pred"], atol=2e-4, rtol=1e-3)
        up = parity_onnx.upsample(low[name])
        np.testing.assert_allclose(
            up[..., 1::4, 1::4, 1::4].numpy(), parity[f"{name}_up_logits_sub"], atol=2e-4, rtol=1e-3
        )
        reference = torch.nn.functional.interpolate(
            torch.from_numpy(parity[f"{name}_lowres_logits"]), size=(128,) * 3, mode="trilinear", align_corners=False
        )
        differing[name] = assert_mask_within_rule(
            up.numpy() > 0, unpack_mask(parity, f"{name}_up_mask_packbits"), reference.numpy()
        )
    print(f"mask voxels differing from the reference, all where its logit is near 0: {differing}")
    assert max(differing.values()) < 100, differing  # a handful of voxels at most (PARITY.md: 2 for call D)


def test_onnx_session_gives_the_torch_sessions_masks_on_the_shipped_ct(demo_onnx, monkeypatch):
    """The same clicks through two sessions: every window's mask equal except where the torch logit is near 0."""
    network, onnx = demo_onnx
    logits: dict[str, list[torch.Tensor]] = {"torch": [], "onnx": []}
    monkeypatch.setattr(network, "upsample", recording(network.upsample, logits["torch"]))
    monkeypatch.setattr(onnx, "upsample", recording(onnx.upsample, logits["onnx"]))
    masks: dict[str, list[np.ndarray]] = {"torch": [], "onnx": []}
    for name, net in (("torch", network), ("onnx", onnx)):
        session = InteractiveSession(net, str(CT))
        masks[name].append(session.click([86, 43, 74]))  # right kidney
        masks[name].append(session.click([88, 47, 74], positive=False))
        session.reset()
        masks[name].append(session.click([59, 53, 18]))  # urinary bladder
    assert len(logits["torch"]) >= 3
    differing = window_differences(logits["torch"], logits["onnx"])
    print(f"{len(logits['torch'])} window masks, {differing} voxels differ (all where the torch logit is near 0)")
    for expected, mask in zip(masks["torch"], masks["onnx"]):
        assert expected.sum() > 100, "an empty mask would hide differences"
        # paste-back takes one window voxel per image voxel (3 mm CT, 1.5 mm windows): no more differences than there
        assert int((mask != expected).sum()) <= differing
        if differing == 0:
            np.testing.assert_array_equal(mask, expected)


@pytest.mark.parametrize(
    "num_objects, num_clicks, shared_embedding, with_mask",
    [(1, 1, True, False), (3, 4, True, True), (2, 2, False, True), (2, 0, True, True), (1, 0, True, False)],
    ids=["1x1", "3x4-mask", "per-object-embeddings", "mask-only", "image-only"],
)
def test_onnx_decoder_takes_any_number_of_objects_and_clicks(
    demo_onnx, num_objects, num_clicks, shared_embedding, with_mask
):
    """Other prompt sizes than the export's examples (2 objects, 3 clicks), padding labels, with and without masks."""
    network, onnx = demo_onnx
    generator = torch.Generator().manual_seed(num_objects * 10 + num_clicks)
    embedding = torch.randn(1, *onnx.embedding_shape[1:], generator=generator)
    embeddings = embedding if shared_embedding else torch.cat([embedding, embedding * 0.9])
    points = labels = None
    if num_clicks:
        points = torch.rand(num_objects, num_clicks, 3, generator=generator) * 127
        labels = torch.randint(-1, 2, (num_objects, num_clicks), generator=generator)
        labels[:, 0] = 1
    mask = torch.randn(num_objects, 1, 32, 32, 32, generator=generator) * 4 if with_mask else None
    with torch.no_grad():
        expected, expected_iou = network.decode(embeddings, points, labels, mask)
        low_res, iou = onnx.decode(embeddings, points, labels, mask)
        torch.testing.assert_close(low_res, expected, rtol=1e-3, atol=1e-4)
        torch.testing.assert_close(iou, expected_iou, rtol=1e-3, atol=1e-4)
        torch.testing.assert_close(onnx.upsample(low_res), network.upsample(expected), rtol=1e-3, atol=1e-4)
    assert low_res.shape == (num_objects, 1, 32, 32, 32)
    assert 0.01 < (low_res > 0).float().mean() < 0.99, "a degenerate mask would hide differences at the threshold"


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda m, e: m.encode(torch.zeros(2, 1, 128, 128, 128)), "takes one window"),
        (lambda m, e: m.decode(e, torch.zeros(1, 2, 3)), "points and point_labels must be given together"),
        (lambda m, e: m.decode(e, torch.zeros(1, 1, 2), ONE), "points must have shape"),
        (lambda m, e: m.decode(e, torch.zeros(1, 1, 3), ONE * 2), "point labels must be in"),
        (lambda m, e: m.decode(e, torch.zeros(1, 1, 3), ONE, torch.zeros(1, 1, 16, 16, 16)), "mask prompt"),
        (lambda m, e: m.decode(e.expand(2, -1, -1, -1, -1), torch.zeros(3, 1, 3), ONE.expand(3, 1)), "expected 1"),
        (lambda m, e: m.decode(e[:, :8], torch.zeros(1, 1, 3), ONE), "image embeddings must be"),
        (lambda m, e: m.decode(e, torch.zeros(1, 1, 3), ONE, multimask_output=True), "single-mask"),
        (lambda m, e: m.decode(e, class_ids=torch.zeros(1, dtype=torch.long)), "no class prompts"),
        (lambda m, e: m.decode(e, boxes=torch.zeros(1, 6)), "no box embeddings"),
    ],
    ids=["batch", "labels", "points", "label-value", "mask", "embedding-batch", "width", "multimask", "class", "box"],
)
def test_onnx_network_checks_its_inputs(demo_onnx, call, message):
    """The graphs have no input checks: the runner keeps the eager network's."""
    _, onnx = demo_onnx
    with pytest.raises(ValueError, match=message):
        call(onnx, torch.zeros(onnx.embedding_shape))


def test_onnx_network_reads_as_a_network(demo_onnx):
    """What ``PreparedImage`` and ``ObjectTrack`` read from a network: device, mask size, box embeddings."""
    network, onnx = demo_onnx
    assert next(onnx.parameters()).device == torch.device("cpu")
    assert onnx.mask_input_size == network.mask_input_size and onnx.img_size == network.img_size
    assert onnx.box_embeddings is False


def test_missing_or_swapped_onnx_files_are_refused(demo_onnx, tmp_path):
    _, onnx = demo_onnx
    with pytest.raises(FileNotFoundError, match="--format onnx"):
        OnnxSAMMed3D(tmp_path)
    folder = onnx.onnx_dir
    for part, name in ONNX_FILES.items():
        shutil.copy(folder / (ONNX_FILES["upsample"] if part == "encoder" else name), tmp_path / name)
    with pytest.raises(ValueError, match="is not the SAM-Med3D encoder"):
        OnnxSAMMed3D(tmp_path)


def test_the_model_card_names_every_input_and_output(demo_onnx):
    """The names a user feeds and reads are the graphs' own, and the model card lists them."""
    _, onnx = demo_onnx
    card = (BUNDLE / "docs" / "README.md").read_text(encoding="utf-8")
    section = card[card.index("## ONNX") :].split("\n## ", 1)[0]
    expected = {
        "encoder": (["image"], ["image_embeddings"]),
        "decoder": (
            ["image_embeddings", "points", "point_labels", "mask_prompt"],
            ["low_res_logits", "iou_predictions"],
        ),
        "decoder_mask_only": (["image_embeddings", "mask_prompt"], ["low_res_logits", "iou_predictions"]),
        "upsample": (["low_res_logits"], ["logits"]),
    }
    for part, (inputs, outputs) in expected.items():
        session = onnx.sessions[part]
        assert [i.name for i in session.get_inputs()] == inputs
        assert [o.name for o in session.get_outputs()] == outputs
        row = next(line for line in section.splitlines() if f"`{ONNX_FILES[part]}`" in line)
        for name in inputs + outputs:
            assert f"`{name}`" in row, f"the model card's row of {ONNX_FILES[part]} does not name {name}"
    shapes = {i.name: i.shape for i in onnx.sessions["decoder"].get_inputs()}
    assert shapes["points"][:2] == ["K", "N"] and shapes["mask_prompt"][0] == "K"  # objects and clicks stay free


@pytest.mark.parametrize(
    "args, message",
    [
        (["--ckpt_dir", "{empty}", "--format", "onnx"], "no weights in"),
        (["--ckpt_dir", "models", "--format", "tflite"], "--format must be one of torchscript, onnx"),
        (["--ckpt_dir", "models", "--format", "onnx", "--device", "cuda:0"], "runs on the CPU"),
    ],
    ids=["no-weights", "format", "device"],
)
def test_export_command_bad_input_gives_one_error_line(tmp_path, args, message):
    command = [sys.executable, "-m", "scripts.export", "--out_dir", str(tmp_path / "out")]
    command += [a.format(empty=tmp_path) for a in args]
    done = subprocess.run(command, cwd=BUNDLE, capture_output=True, encoding="utf-8", errors="replace", timeout=300)
    errors = [line for line in (done.stdout + done.stderr).splitlines() if line.startswith("error:")]
    assert done.returncode == 1 and len(errors) == 1, done.stderr[-3000:]
    assert re.search(message, errors[0]), errors[0]
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_onnx_overlay_gives_the_label_map_of_the_eager_run(demo_onnx, tmp_path):
    """``inference_onnx.json`` over ``inference.json``: the demo model's label map, on the export of its weights."""
    from test_export import run_inference

    _, onnx = demo_onnx
    shutil.copy(BUNDLE / "models" / "demo_model.pt", onnx.onnx_dir / "demo_model.pt")  # the eager run's weights
    eager = run_inference(tmp_path, ["inference.json"], "eager", onnx.onnx_dir)
    exported = run_inference(tmp_path, ["inference.json", "inference_onnx.json"], "onnx", onnx.onnx_dir)
    labels, counts = np.unique(eager, return_counts=True)
    assert len(labels) > 1 and counts[1:].min() > 100, "an empty label map would hide differences"
    np.testing.assert_array_equal(exported, eager)


def test_onnx_overlay_checks_the_exported_files_instead_of_loading_weights():
    base = json.loads((BUNDLE / "configs" / "inference.json").read_text(encoding="utf-8"))["initialize"]
    overlay = json.loads((BUNDLE / "configs" / "inference_onnx.json").read_text(encoding="utf-8"))
    assert overlay["initialize"] == [*base, "$@scripts.networks.check_onnx_exported(@onnx_dir)"]
    assert overlay["amp"] is False and "cpu" in overlay["device"]  # onnxruntime's CPU provider, float32


def test_onnx_overlay_without_exported_files_says_how_to_make_them(tmp_path):
    workflow = ConfigWorkflow(
        workflow_type="infer",
        config_file=[str(BUNDLE / "configs" / "inference.json"), str(BUNDLE / "configs" / "inference_onnx.json")],
        meta_file=str(BUNDLE / "configs" / "metadata.json"),
        logging_file=str(BUNDLE / "configs" / "logging.conf"),
        bundle_root=str(BUNDLE),
        ckpt_dir=str(tmp_path),
    )
    with pytest.raises(RuntimeError) as raised:  # MONAI wraps it; the command line prints the user error alone
        workflow.initialize()
    assert re.search("ONNX export not found: .*--format onnx", str(user_error(raised.value)))
