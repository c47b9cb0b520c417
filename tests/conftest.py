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
"""Shared fixtures: the bundle on sys.path, the reference vectors and the deterministic parity weights."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = ROOT / "bundle"
DATA = Path(__file__).resolve().parent / "data"
REFERENCE = DATA / "reference"
sys.path.insert(0, str(BUNDLE))  # the bundle's `scripts` package, as the zoo CI and `monai.bundle run` do

_EMBEDDINGS = (
    "point_embeddings.0.weight",
    "point_embeddings.1.weight",
    "point_embeddings.2.weight",  # box corners (CVPR25_3DFM checkpoints): tests/data/segfm/README.md extends the recipe
    "point_embeddings.3.weight",
    "not_a_point_embed.weight",
    "no_mask_embed.weight",
    "iou_token.weight",
    "mask_tokens.weight",
)


def recipe_rule(key: str, shape: tuple[int, ...]) -> tuple[str, float, float]:
    """PARITY.md section 1: the (rule, offset, scale) of a state_dict key, first match wins."""
    if key.endswith("positional_encoding_gaussian_matrix"):
        return "gauss_matrix", 0.0, 1.0
    if len(shape) == 1 and key.endswith(".weight"):
        return "norm_weight", 1.0, 0.1
    if len(shape) == 1:
        return "bias", 0.0, 0.1
    if key.endswith(_EMBEDDINGS):
        return "embedding", 0.0, 1.0
    if key.endswith("pos_embed"):
        return "abs_pos_embed", 0.0, 0.2
    if ".rel_pos_" in key:
        return "rel_pos", 0.0, 0.1
    return "fan_in", 0.0, 1.0 / float(np.sqrt(np.prod(shape[1:])))


def recipe_state_dict(shapes: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    """The deterministic parity weights for every key of ``shapes``."""
    state = {}
    for key, shape in shapes.items():
        _, offset, scale = recipe_rule(key, shape)
        z = np.random.RandomState(zlib.crc32(key.encode("utf-8"))).standard_normal(size=shape)
        state[key] = torch.from_numpy((offset + scale * z).astype(np.float32))
    return state


def parity_image() -> torch.Tensor:
    """PARITY.md section 2: the (1, 1, 128, 128, 128) input, computed in float64 then cast."""
    i, j, k = np.meshgrid(*(np.arange(128, dtype=np.float64),) * 3, indexing="ij")
    e = ((i - 70) / 30) ** 2 + ((j - 50) / 20) ** 2 + ((k - 60) / 12) ** 2
    x = (
        2 * np.exp(-e)
        + 0.3 * np.sin(2 * np.pi * (i / 17 + 0.5 * j / 29))
        + 0.2 * np.cos(2 * np.pi * k / 11)
        + (i - 64) / 128
        - 0.5 * (k - 64) / 128
    )
    return torch.from_numpy(x.astype(np.float32))[None, None]


@pytest.fixture(scope="session")
def parity() -> dict[str, np.ndarray]:
    with np.load(REFERENCE / "parity_vectors.npz") as f:
        return {k: f[k] for k in f.files}


@pytest.fixture(scope="session")
def parity_weights() -> dict[str, torch.Tensor]:
    from scripts.networks import SAMMed3D

    return recipe_state_dict({k: tuple(v.shape) for k, v in SAMMed3D().state_dict().items()})


@pytest.fixture(scope="session")
def parity_model(parity_weights):
    from scripts.networks import SAMMed3D

    torch.set_num_threads(2)
    model = SAMMed3D().eval()
    model.load_state_dict(parity_weights, strict=True)
    return model


@pytest.fixture(scope="session")
def evaluated(tmp_path_factory) -> Path:
    """evaluate.json (over train.json) run once, in one process, with a tiny random network on the CT and MRI cases.

    Shared by the report tests and the two-rank evaluation, which must reproduce these records.
    """
    from test_train_workflow import CASES

    tmp_path = tmp_path_factory.mktemp("evaluate")
    run_tiny_evaluation(tmp_path, check_properties=True, cases=CASES, num_clicks=3, best_over_clicks=True)
    return tmp_path


def run_tiny_evaluation(tmp_path: Path, check_properties: bool = False, **overrides) -> None:
    """Run evaluate.json (over train.json) in this process with a seeded tiny random network saved in
    ``tmp_path/models``.

    Args:
        tmp_path: the run's folder (its ``models`` and outputs).
        check_properties: also require the zoo's property check of the overlay to pass.
        overrides: ids for ``tiny_overrides`` (cases, protocol, ...).
    """
    from monai.bundle import ConfigWorkflow
    from test_train_workflow import CONFIGS, TINY_NET, tiny_overrides

    from scripts.networks import SAMMed3D
    from scripts.networks.checkpoint import save_network

    torch.manual_seed(0)
    (tmp_path / "models").mkdir(exist_ok=True)
    save_network(SAMMed3D(**TINY_NET), tmp_path / "models" / "model.pt")  # with its sizes, as training saves it
    wf = ConfigWorkflow(
        config_file=[str(CONFIGS / "train.json"), str(CONFIGS / "evaluate.json")],
        meta_file=str(CONFIGS / "metadata.json"),
        logging_file=str(CONFIGS / "logging.conf"),
        workflow_type="train",
        **tiny_overrides(tmp_path, **overrides),
    )
    wf.initialize()
    if check_properties:
        assert wf.check_properties() == []  # the zoo's check, for the train + evaluate overlay
    wf.run()
    wf.finalize()


def fresh_clone(dest: Path) -> Path:
    """The repository's files as a fresh clone holds them (tracked, or new and not ignored), copied from the working
    tree into ``dest``: no venv, no downloaded weights, no outputs of earlier runs."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    )
    for name in sorted({n for n in listed.stdout.decode("utf-8").split("\0") if n}):
        source = ROOT / name
        if source.is_file():  # a file deleted in the working tree is not in the clone either
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return dest


@pytest.fixture(scope="session")
def app_install(tmp_path_factory):
    """README's set-up and MONAI Label install run as written in a fresh copy with its own venv (``app_install.py``);
    every MONAI Label test starts its servers from it."""
    from app_install import install_as_readme_says

    return install_as_readme_says(tmp_path_factory.mktemp("readme_install"))


@pytest.fixture(scope="session")
def orthanc(tmp_path_factory):
    """A DICOMweb store on 127.0.0.1 (Debian's Orthanc) holding the demo CT as a DICOM series (``series_uid``)."""
    from dicom_series import write_ct_series
    from orthanc import Orthanc

    root = tmp_path_factory.mktemp("orthanc")
    store = Orthanc(root / "server")
    try:
        uids = write_ct_series(BUNDLE / "sample_data" / "example_ct.nii.gz", root / "ct_series")
        store.upload(root / "ct_series")
        store.series_uid = uids.series
        store.series_folder = root / "ct_series"
        yield store
    finally:
        store.stop()
