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
"""The zoo's packaging, offline: ``<name>_v<version>.zip`` built, installed with ``monai.bundle download`` and run
from the installed copy; ``download_large_files`` landing the official checkpoint container, loaded as it is."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
import yaml
from conftest import BUNDLE, ROOT
from monai.bundle import ConfigParser

from scripts.networks import SAMMed3D
from scripts.weights import find_weights, load_weights

NAME = "sam_med3d_interactive_ct_mri"
BUILDER = ROOT / "tools" / "build_bundle_zip.py"
OFFICIAL_URL = "https://huggingface.co/blueyo0/SAM-Med3D/resolve/main/sam_med3d_turbo.pth"


def version() -> str:
    return json.loads((BUNDLE / "configs" / "metadata.json").read_text(encoding="utf-8"))["version"]


def run(command: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """A command from ``cwd`` with no ``PYTHONPATH`` (the configs put ``bundle_root`` on the path themselves)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    cwd.mkdir(parents=True, exist_ok=True)
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, encoding="utf-8", errors="replace")


@pytest.fixture(scope="module")
def bundle_zip(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    done = run([sys.executable, str(BUILDER), "--out_dir", str(out)], cwd=out)
    assert done.returncode == 0, done.stderr
    path = out / f"{NAME}_v{version()}.zip"
    assert done.stdout.startswith(f"{path} ") and "sha1" in done.stdout
    return path


@pytest.fixture(scope="module")
def installed(bundle_zip, tmp_path_factory) -> Path:
    """The zip installed the zoo way: ``monai.bundle download --url file://...``."""
    bundle_dir = tmp_path_factory.mktemp("installed")
    command = [sys.executable, "-m", "monai.bundle", "download", "--name", NAME]
    command += ["--url", bundle_zip.as_uri(), "--bundle_dir", str(bundle_dir)]
    done = run(command, cwd=bundle_dir)
    assert done.returncode == 0, done.stderr[-3000:]
    return bundle_dir / NAME


def packaged(path: Path) -> bool:
    """Whether the builder must package a file of the bundle (the rule of the zoo release, stated independently)."""
    parts = path.relative_to(BUNDLE).parts
    hidden = any(p.startswith(".") or p == "__pycache__" for p in parts)
    shipped_model = parts == ("models", "demo_model.pt")  # the demo model kept in git travels with the bundle
    excluded = parts[0] in ("eval", "models") and not shipped_model
    return path.is_file() and not excluded and not hidden and path.suffix != ".pyc"


def test_zip_holds_the_bundle_under_one_folder_without_outputs_or_weights(bundle_zip):
    with zipfile.ZipFile(bundle_zip) as archive:
        names = archive.namelist()
        expected = sorted(f"{NAME}/{p.relative_to(BUNDLE).as_posix()}" for p in BUNDLE.rglob("*") if packaged(p))
        assert sorted(names) == expected
        for name in names:
            assert archive.read(name) == (BUNDLE / name.split("/", 1)[1]).read_bytes(), name
    for required in ("LICENSE", "configs/metadata.json", "configs/inference.json", "large_files.yml"):
        assert f"{NAME}/{required}" in names
    assert f"{NAME}/configs/inference_torchscript.json" in names and f"{NAME}/scripts/export.py" in names
    assert not [n for n in names if n.startswith(f"{NAME}/eval/") or n.endswith(".pyc")]
    assert [n for n in names if n.startswith(f"{NAME}/models/")] == [f"{NAME}/models/demo_model.pt"]


def test_zip_is_reproducible(bundle_zip, tmp_path):
    done = run([sys.executable, str(BUILDER), "--out_dir", str(tmp_path)], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / bundle_zip.name).read_bytes() == bundle_zip.read_bytes()


def write_image(path: Path) -> str:
    """A small CT-like volume: smaller than one window, so one encoder pass serves every click."""
    i, j, k = np.meshgrid(*(np.arange(n, dtype=np.float32) for n in (64, 56, 40)), indexing="ij")
    image = -700 + 800 * np.exp(-(((i - 30) / 10) ** 2 + ((j - 25) / 9) ** 2 + ((k - 20) / 7) ** 2))
    nib.save(nib.Nifti1Image(image.astype(np.float32), np.diag([1.5, -1.5, 2.0, 1.0])), str(path))
    return str(path)


def test_installed_copy_runs_from_another_folder(installed, tmp_path):
    parser = ConfigParser()
    parser.read_config(str(installed / "configs" / "inference.json"))
    parser["bundle_root"] = str(installed)
    demo = Path(parser.get_parsed_content("input_dict")["image"])
    assert demo.is_file() and demo.resolve().is_relative_to(installed.resolve()), "the demo must come with the zip"

    request = {"image": write_image(tmp_path / "small.nii.gz"), "points": [[30, 25, 20]], "point_labels": [1]}
    command = [sys.executable, "-m", "monai.bundle", "run", "--config_file", str(installed / "configs/inference.json")]
    command += ["--bundle_root", str(installed), "--untrained", "True", "--output_dir", str(tmp_path / "out")]
    done = run([*command, "--input_dict", repr(request)], cwd=tmp_path / "elsewhere")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "UNTRAINED" in done.stdout + done.stderr
    written = nib.load(str(tmp_path / "out" / "small_seg.nii.gz"))
    assert written.shape == (64, 56, 40) and written.get_data_dtype() == np.uint8
    np.testing.assert_allclose(written.affine, np.diag([1.5, -1.5, 2.0, 1.0]), atol=1e-6)
    assert set(np.unique(np.asarray(written.dataobj))) <= {0, 1}  # the installed files are the repository's (above)


def md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def test_download_large_files_lands_the_official_container_loaded_as_it_is(installed, tmp_path):
    """Offline: large_files.yml pointed at a local copy of a checkpoint in the official format, with its md5."""
    copy = tmp_path / NAME
    shutil.copytree(installed, copy)
    config = yaml.safe_load((copy / "large_files.yml").read_text(encoding="utf-8"))
    (entry,) = config["large_files"]
    assert entry["path"] == "models/model.pt" and entry["url"] == OFFICIAL_URL  # as shipped: the zoo's name

    torch.manual_seed(1)
    state = SAMMed3D().state_dict()
    hub = tmp_path / "hub" / "sam_med3d_turbo.pth"
    hub.parent.mkdir()
    torch.save({"model_state_dict": state}, hub)  # the container of the released checkpoints
    entry.update(url=hub.as_uri(), hash_val=md5(hub), hash_type="md5")
    (copy / "large_files.yml").write_text(yaml.safe_dump(config), encoding="utf-8")

    command = [sys.executable, "-m", "monai.bundle", "download_large_files", "--bundle_path", str(copy)]
    done = run(command, cwd=tmp_path / "elsewhere")
    assert done.returncode == 0, done.stderr[-3000:]
    landed = copy / "models" / "model.pt"
    assert landed.is_file() and md5(landed) == entry["hash_val"]
    # no conversion: only the downloaded container (beside the demo model that ships with the bundle)
    assert sorted(p.name for p in (copy / "models").iterdir()) == ["demo_model.pt", "model.pt"]

    parser = ConfigParser()
    parser.read_config(str(copy / "configs" / "inference.json"))
    parser["bundle_root"] = str(copy)
    ckpt_dir = parser.get_parsed_content("ckpt_dir")
    assert find_weights(ckpt_dir) == landed
    network = load_weights(parser.get_parsed_content("network_def"), ckpt_dir)  # strict
    for big in (hub, landed):  # 0.8 GB: pytest keeps the temporary folders of the last runs
        big.unlink()
    for key, value in state.items():
        assert torch.equal(network.state_dict()[key], value), key
