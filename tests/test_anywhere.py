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
"""The bundle from any working folder with no PYTHONPATH, README's Python example as written, and the layout table."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import nibabel as nib
import pytest
from conftest import BUNDLE, ROOT, fresh_clone
from test_train_workflow import TINY_NET, cli_args

CONFIGS = BUNDLE / "configs"


def bundle_run(config_files: list[str], cwd, *args: str) -> subprocess.CompletedProcess:
    """``python -m monai.bundle run`` from ``cwd``, with no PYTHONPATH."""
    files = config_files[0] if len(config_files) == 1 else "[" + ",".join(f"'{f}'" for f in config_files) + "]"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", files, *args]
    cwd.mkdir(parents=True, exist_ok=True)
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, encoding="utf-8", errors="replace", timeout=900)


def test_inference_from_another_folder(tmp_path):
    done = bundle_run(
        [str(CONFIGS / "inference.json")], tmp_path, "--bundle_root", str(BUNDLE), "--output_dir", str(tmp_path / "out")
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert nib.load(str(tmp_path / "out" / "example_ct_seg.nii.gz")).shape == (122, 101, 112)


def test_batch_inference_from_another_folder(tmp_path):
    configs = [str(CONFIGS / "inference.json"), str(CONFIGS / "batch_inference.json")]
    done = bundle_run(
        configs, tmp_path, "--bundle_root", str(BUNDLE), "--untrained", "True", "--output_dir", str(tmp_path / "out")
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "out" / "example_ct_seg.nii.gz").is_file()


@pytest.mark.slow
def test_training_and_evaluation_from_another_folder(tmp_path):
    ts = ROOT / "tests" / "data" / "totalsegmentator"
    common = {
        "bundle_root": str(BUNDLE),
        "ckpt_dir": str(tmp_path / "models"),
        "output_dir": str(tmp_path / "eval"),
        "data_source": [{"image": str(ts / "example_ct_sm.nii.gz"), "label": str(ts / "example_seg.nii.gz")}],
        "class_ids": [2],
        "num_workers": 0,
        "num_rounds": 1,
        **TINY_NET,
    }
    train = bundle_run(
        [str(CONFIGS / "train.json")],
        tmp_path / "a",
        *cli_args({**common, "epochs": 1, "val_fraction": 0.0, "val_interval": 2}),
    )
    assert train.returncode == 0, train.stderr[-3000:]
    assert (tmp_path / "models" / "model.pt").is_file()
    evaluate = bundle_run(
        [str(CONFIGS / "train.json"), str(CONFIGS / "evaluate.json")],
        tmp_path / "b",
        *cli_args({**common, "num_clicks": 2}),
    )
    assert evaluate.returncode == 0, evaluate.stderr[-3000:]
    assert (tmp_path / "eval" / "nclick_summary.json").is_file()


@pytest.mark.parametrize("config", ["inference.json", "train.json"])
def test_without_bundle_root_one_line_says_what_to_do(tmp_path, config):
    done = bundle_run([str(CONFIGS / config)], tmp_path)
    assert done.returncode == 1
    assert (
        done.stderr.strip()
        .splitlines()[-1]
        .endswith("run from the bundle folder or pass --bundle_root <bundle folder>")
    )
    assert "Traceback" not in done.stderr


def test_torchscript_overlay_without_its_files_from_another_folder(tmp_path):
    configs = [str(CONFIGS / "inference.json"), str(CONFIGS / "inference_torchscript.json")]
    done = bundle_run(configs, tmp_path, "--bundle_root", str(BUNDLE), "--ckpt_dir", str(tmp_path))
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("error: TorchScript encoder not found")


def readme_python_block() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(r"```python\n(.*?)```", text, re.S)
    assert match, "README.md has no Python example"
    return match.group(1)


def test_readme_python_example_runs_as_written_in_a_fresh_clone(tmp_path):
    clone = fresh_clone(tmp_path / "clone")
    assert not (clone / "bundle" / "models" / "model.pt").exists()  # a fresh clone has the demo model only
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [sys.executable, "-c", readme_python_block()],
        cwd=clone,
        env=env,
        capture_output=True,
        encoding="utf-8",
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    sizes = [int(n) for n in re.findall(r": (\d+) voxels", done.stdout)]
    assert len(sizes) == 2 and all(n > 1000 for n in sizes), done.stdout


def test_readme_layout_lists_every_module():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    layout = text[text.index("## Layout") :]
    for path in sorted((BUNDLE / "scripts").rglob("*.py")):
        if path.name == "__init__.py":
            continue
        relative = path.relative_to(BUNDLE / "scripts")
        named = f"`bundle/scripts/{relative}`" in layout or (
            len(relative.parts) == 2 and f"`{relative.name}`" in layout
        )
        assert named, f"README's layout table does not list scripts/{relative}"


def test_the_one_call_sizes_the_network_to_the_weights_it_finds():
    """The demo model is smaller than the released sizes: the one call builds it at its size and loads it strictly."""
    from scripts import load_network
    from scripts.networks.checkpoint import read_state_dict

    network = load_network(BUNDLE / "models")
    state = read_state_dict(BUNDLE / "models" / "demo_model.pt")
    assert not network.training and network.config["encoder_embed_dim"] == 96
    assert set(network.state_dict()) == set(state)
