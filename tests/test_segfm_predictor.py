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
"""The SegFM predictor (``configs/segfm_predict.json``): case reading, exact geometry on an anisotropic case, both
rules, every case of a folder, and bad cases refused one line each while the others are written."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest
from conftest import BUNDLE, DATA
from test_box_prompts import BoxOracle
from test_inference import OracleNetwork, dice

from scripts import ClickWindowInferer, InteractiveSession
from scripts.segfm import SegfmPredictor, case_image, predict_case, read_case

EVAL = DATA / "segfm" / "eval"
NEAREST = ClickWindowInferer(interpolation="nearest")


class MaskOracle(OracleNetwork):
    """The oracle, taking (and ignoring) a mask prompt."""

    mask_input_size = (32, 32, 32)


def marked_case(tmp_path, name: str, k: int = 1, **extra) -> tuple:
    """A fixture case whose image is 255 on class ``k`` of its ground truth and at most 64 elsewhere (the oracle
    segments the upper half of a window's range) inside its box, with its class-k box only; returns the marked
    voxels."""
    with np.load(EVAL / "imgs" / f"{name}.npz", allow_pickle=True) as f:
        case = {key: f[key] for key in f.files}
    with np.load(EVAL / "gts" / f"{name}.npz") as f:
        target = f["gts"] == k
    box = case["boxes"][k - 1]
    inside = np.zeros_like(target)
    inside[
        box["z_min"] : box["z_max"] + 1,
        box["z_mid_y_min"] : box["z_mid_y_max"] + 1,
        box["z_mid_x_min"] : box["z_mid_x_max"] + 1,
    ] = True
    target &= inside  # the box is the z_mid slice's: a class may leave it on other slices
    case["imgs"] = np.where(target, 255, case["imgs"] // 4 + 1).astype(np.uint8)
    case["boxes"] = case["boxes"][k - 1 : k]
    case.update(extra)
    path = tmp_path / f"{name}.npz"
    np.savez_compressed(path, **case)
    return path, target


def test_anisotropic_geometry_is_exact(tmp_path):
    """CT_PelvisAniso: spacing stored (x, y, z) = (2.0, 2.5, 6.0); the box reaches the network with its physical
    size (a wrong axis order of the spacing changes it), and the mask lands on the class, voxel for voxel."""
    with np.load(EVAL / "imgs" / "CT_PelvisAniso.npz", allow_pickle=True) as f:
        boxes, spacing = list(f["boxes"]), f["spacing"]
    assert spacing.tolist() == [2.0, 2.5, 6.0]
    for k, box in enumerate(boxes, start=1):
        path, target = marked_case(tmp_path, "CT_PelvisAniso", k)
        network = BoxOracle()
        segs = predict_case(read_case(path), network, NEAREST)
        assert segs.dtype == np.uint8 and segs.shape == target.shape
        assert dice(segs == 1, target) >= 0.999, f"class {k}: Dice {dice(segs == 1, target):.4f}"
        extent_mm = {  # (z, y, x) array axes -> S, P, L: the RAS grid's axes are x, y, z
            0: (box["z_mid_x_max"] - box["z_mid_x_min"]) * 2.0,
            1: (box["z_mid_y_max"] - box["z_mid_y_min"]) * 2.5,
            2: (box["z_max"] - box["z_min"]) * 6.0,
        }
        first = network.boxes[0]
        np.testing.assert_allclose(first[3:] - first[:3], [extent_mm[a] / 1.5 for a in range(3)], atol=1e-4)


def test_the_image_geometry():
    case = read_case(EVAL / "imgs" / "CT_PelvisAniso.npz")
    image = case_image(case)
    assert tuple(image.shape) == (1, *case.imgs.shape)
    np.testing.assert_allclose(np.linalg.norm(image.affine.numpy()[:3, :3], axis=0), [6.0, 2.5, 2.0])


def test_clicks_are_read_in_time_order(tmp_path):
    path = tmp_path / "c.npz"
    clicks = np.array([{"fg": [[1, 2, 3], [5, 6, 7]], "bg": [[4, 4, 4]]}], dtype=object)
    np.savez_compressed(
        path, imgs=np.zeros((10, 10, 10), np.uint8), spacing=[1, 1, 1], clicks=clicks, clicks_order=[["fg", "bg", "fg"]]
    )
    (prompts,) = read_case(path).classes
    assert [(p.tolist(), positive) for p, positive in prompts.clicks] == [
        ([1, 2, 3], True),
        ([4, 4, 4], False),
        ([5, 6, 7], True),
    ]
    assert prompts.box is None


def test_session_rule_replays_box_and_clicks_in_order(tmp_path):
    """The session rule equals a session given the box and then the clicks in clicks_order."""
    with np.load(EVAL / "steps" / "CT_AbdomenSm.npz") as f:
        clicks_zyx, is_fg = f["click_zyx"][1:4, 0], f["click_is_fg"][1:4, 0]
    clicks = np.array(
        [
            {
                "fg": [c.tolist() for c, g in zip(clicks_zyx, is_fg) if g == 1],
                "bg": [c.tolist() for c, g in zip(clicks_zyx, is_fg) if g == 0],
            }
        ],
        dtype=object,
    )
    order = [["fg" if g == 1 else "bg" for g in is_fg]]
    path, target = marked_case(tmp_path, "CT_AbdomenSm", 1, clicks=clicks, clicks_order=order)
    case = read_case(path)
    ours = predict_case(case, OracleNetwork(), NEAREST)
    session = InteractiveSession(OracleNetwork(), case_image(case), inferer=NEAREST)
    session.box(*case.classes[0].box)
    for point, positive in case.classes[0].clicks:
        session.click(point, positive=positive)
    np.testing.assert_array_equal(ours == 1, session.mask)
    assert dice(ours == 1, target) > 0.99


def test_upstream_rule(tmp_path):
    """A last prompt that is negative keeps prev_pred; a positive one adds to it (never removes), seeded."""
    path, target = marked_case(tmp_path, "CT_AbdomenSm", 2)  # the spleen: one window holds it
    prev = np.zeros(target.shape, np.uint8)
    prev[0:3, 0:3, 0:3] = 1  # a false positive far from the class: upstream never removes it
    clicks = np.array([{"fg": [], "bg": [[1, 1, 1]]}], dtype=object)
    path_bg, _ = marked_case(tmp_path / "..", "CT_AbdomenSm", 2, clicks=clicks, clicks_order=[["bg"]], prev_pred=prev)
    kept = predict_case(read_case(path_bg), MaskOracle(), NEAREST, rule="upstream")
    np.testing.assert_array_equal(kept, prev)
    clicks = np.array([{"fg": [np.argwhere(target)[len(np.argwhere(target)) // 2].tolist()], "bg": []}], dtype=object)
    path_fg, _ = marked_case(tmp_path / "..", "CT_AbdomenSm", 2, clicks=clicks, clicks_order=[["fg"]], prev_pred=prev)
    first = predict_case(read_case(path_fg), MaskOracle(), NEAREST, rule="upstream")
    again = predict_case(read_case(path_fg), MaskOracle(), NEAREST, rule="upstream")
    np.testing.assert_array_equal(first, again)
    assert (first[prev == 1] == 1).all() and dice(first == 1, target | (prev == 1)) > 0.99
    session = predict_case(read_case(path_fg), MaskOracle(), NEAREST, rule="session")
    assert not (session[prev == 1] == 1).any(), "the session rule replays the prompts: no union with prev_pred"


BAD = {
    "no_imgs": ({"spacing": [1, 1, 1]}, "no 'imgs'"),
    "counts": ({"clicks": np.array([{"fg": [[1, 1, 1]], "bg": []}] * 2, dtype=object)}, "different class counts"),
    "box_out": (
        {
            "boxes": np.array(
                [dict(z_min=0, z_max=40, z_mid=5, z_mid_x_min=0, z_mid_y_min=0, z_mid_x_max=5, z_mid_y_max=5)],
                dtype=object,
            )
        },
        "lies outside the image",
    ),
    "box_inverted": (
        {
            "boxes": np.array(
                [dict(z_min=5, z_max=2, z_mid=3, z_mid_x_min=0, z_mid_y_min=0, z_mid_x_max=5, z_mid_y_max=5)],
                dtype=object,
            )
        },
        "minimum above its maximum",
    ),
    "click_out": (
        {"clicks": np.array([{"fg": [[1, 1, 500]], "bg": []}], dtype=object), "clicks_order": [["fg"]]},
        r"fg click \[1.0, 1.0, 500.0\] of class 1 lies outside",
    ),
    "prev_shape": ({"prev_pred": np.zeros((2, 2, 2), np.uint8)}, "'prev_pred' has shape"),
}


def bad_cases(folder):
    good = dict(np.load(EVAL / "imgs" / "MR_AbdomenSm.npz", allow_pickle=True))
    good["boxes"] = good["boxes"][:1]
    for name, (change, _) in BAD.items():
        case = {**good, **change}
        if name == "no_imgs":
            del case["imgs"]
        if name == "counts":
            case["clicks_order"] = [["fg"], ["fg"]]
        np.savez_compressed(folder / f"{name}.npz", **case)
    (folder / "unreadable.npz").write_bytes(b"not a zip")
    np.savez_compressed(folder / "good.npz", **good)


def test_bad_cases_one_line_each_others_written(tmp_path, capsys):
    inputs, outputs = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    bad_cases(inputs)
    predictor = SegfmPredictor(OracleNetwork(), NEAREST)
    failed = predictor.run(inputs, outputs)
    assert sorted(failed) == sorted([*BAD, "unreadable"])
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert len(errors) == len(BAD) + 1
    for name, (_, message) in BAD.items():
        (line,) = [e for e in errors if e.startswith(f"error: case {name}: ")]
        assert re.search(message, line), line
    assert any(e.startswith("error: case unreadable: cannot read") for e in errors)
    assert sorted(p.name for p in outputs.iterdir()) == ["good.npz"]  # nothing half-written
    with np.load(outputs / "good.npz") as f:
        assert f["segs"].dtype == np.uint8 and f["segs"].shape == (20, 91, 117)
    with pytest.raises(SystemExit) as done:
        predictor.exit()
    assert done.value.code == 1


@pytest.mark.slow
def test_command_line_with_the_demo_model_handles_every_case(tmp_path):
    """``monai.bundle run --config_file configs/segfm_predict.json`` from bundle/, demo model: two small cases and a
    broken one: both are written, one error line, exit status 1."""
    inputs, outputs = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    for name in ("CT_PelvisAniso", "MR_AbdomenSm"):
        case = dict(np.load(EVAL / "imgs" / f"{name}.npz", allow_pickle=True))
        case["boxes"] = case["boxes"][:1]
        np.savez_compressed(inputs / f"{name}.npz", **case)
    (inputs / "broken.npz").write_bytes(b"\0")
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", "configs/segfm_predict.json"]
    cmd += ["--input_dir", str(inputs), "--output_dir", str(outputs), "--max_windows", "2"]
    done = subprocess.run(cmd, cwd=BUNDLE, capture_output=True, encoding="utf-8", errors="replace")
    assert done.returncode == 1, done.stderr[-2000:]
    assert [line for line in done.stderr.splitlines() if line.startswith("error: ")] == [
        line for line in done.stderr.splitlines() if line.startswith("error: case broken: cannot read")
    ]
    assert sorted(p.name for p in outputs.iterdir()) == ["CT_PelvisAniso.npz", "MR_AbdomenSm.npz"]
    for name in ("CT_PelvisAniso", "MR_AbdomenSm"):
        with np.load(outputs / f"{name}.npz") as f, np.load(inputs / f"{name}.npz", allow_pickle=True) as g:
            assert f["segs"].dtype == np.uint8 and f["segs"].shape == g["imgs"].shape
            assert set(np.unique(f["segs"])) <= {0, 1} and (f["segs"] == 1).any()
