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
"""The CUDA paths against the CPU's (marker ``gpu``; ``benchmarks/gpu_check.py`` runs them with ``pytest -m gpu``).

Every test here is skipped where CUDA is absent, which is the development machines and CI of this project (2-core
CPUs, no GPU): they count as GPU skips, not passes, and none of them has run yet. On a CUDA machine they check that
float32 on CUDA gives the CPU's masks (equal voxel for voxel, or different only where the CPU's logit is within 1e-3
of 0, counted and printed), that autocast keeps each object's mask (Dice >= 0.99 against float32), that training runs
with AMP, that torchrun with NCCL trains and batch-infers, and that the MONAI Label app answers on CUDA as on the CPU.
TF32 is switched off for the float32 comparisons (PARITY.md: with it, expect 1e-2 deviations).
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from conftest import BUNDLE, DATA
from logit_rule import recording, window_differences

from scripts import InteractiveSession, load_network
from scripts.inference import ClickWindowInferer

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(
        not torch.cuda.is_available(), reason="needs a CUDA GPU (none here); run by benchmarks/gpu_check.py on one"
    ),
]

CT = BUNDLE / "sample_data" / "example_ct.nii.gz"
MRI = DATA / "totalsegmentator" / "example_mr_sm.nii.gz"
# Per image: the objects, each a list of (click, positive); the CT's are README's main job plus a correction.
OBJECTS = {
    "ct": (CT, [[([86, 43, 74], True), ([88, 47, 74], False)], [([59, 53, 18], True)]]),
    "mri": (MRI, [[([90, 61, 16], True)]]),
}
# The command line's request for each image (the same first clicks).
REQUESTS = {
    "ct": "None",  # inference.json's own input_dict: README's main job
    "mri": f"{{'image': '{MRI}', 'points': [[90, 61, 16]], 'point_labels': [1]}}",
}


@pytest.fixture
def no_tf32() -> Iterator[None]:
    """float32 on CUDA as on the CPU: no TF32 in matrix products and convolutions."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def run_session(network: torch.nn.Module, image: Path, objects: list, amp: bool = False) -> list[np.ndarray]:
    """Each object's final mask on the image's grid, clicks in order."""
    session = InteractiveSession(network, str(image), inferer=ClickWindowInferer(amp=amp))
    masks = []
    for clicks in objects:
        for point, positive in clicks:
            session.click(point, positive=positive)
        masks.append(session.mask)
        session.reset()
    return masks


def cpu_and_cuda_sessions(name: str, monkeypatch) -> tuple[list[np.ndarray], list[np.ndarray], int]:
    """The same clicks on the CPU and on CUDA (float32): both runs' masks and the window voxels that differ."""
    image, objects = OBJECTS[name]
    logits: dict[str, list[torch.Tensor]] = {"cpu": [], "cuda": []}
    masks = {}
    for device in ("cpu", "cuda"):
        network = load_network(BUNDLE / "models").to(device)
        monkeypatch.setattr(network, "upsample", recording(network.upsample, logits[device]))
        masks[device] = run_session(network, image, objects)
    return masks["cpu"], masks["cuda"], window_differences(logits["cpu"], logits["cuda"])


@pytest.mark.parametrize("name", sorted(OBJECTS))
def test_session_on_cuda_in_float32_gives_the_cpus_masks(name, no_tf32, monkeypatch):
    expected, masks, differing = cpu_and_cuda_sessions(name, monkeypatch)
    print(f"{name}: {differing} window voxels differ, all where the CPU's logit is within 1e-3 of 0")
    for mask, reference in zip(masks, expected):
        assert reference.sum() > 100
        assert int((mask != reference).sum()) <= differing  # paste-back takes one window voxel per image voxel
        if differing == 0:
            np.testing.assert_array_equal(mask, reference)


def command_line(tmp_path: Path, request: str, device: str, amp: bool = False) -> np.ndarray:
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", "configs/inference.json"]
    cmd += ["--output_dir", str(tmp_path), "--input_dict", request, "--device", f"$torch.device('{device}')"]
    cmd += ["--amp", str(amp)]
    done = subprocess.run(cmd, cwd=BUNDLE, capture_output=True, encoding="utf-8", errors="replace", timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    (written,) = tmp_path.glob("*_seg.nii.gz")
    return np.asarray(nib.load(written).dataobj)


@pytest.mark.parametrize("name", sorted(OBJECTS))
def test_command_line_on_cuda_in_float32_gives_the_cpus_label_map(name, tmp_path, monkeypatch):
    """inference.json with ``--device cuda:0 --amp False``; TF32 is off by default for matmuls, on for cuDNN
    convolutions in a fresh process: the bound is the sessions' count of near-zero voxels."""
    _, _, differing = cpu_and_cuda_sessions(name, monkeypatch)
    cpu = command_line(tmp_path / "cpu", REQUESTS[name], "cpu")
    cuda = command_line(tmp_path / "cuda", REQUESTS[name], "cuda:0")
    print(f"{name}: command line, {int((cuda != cpu).sum())} voxels differ (sessions' near-zero voxels: {differing})")
    assert len(np.unique(cpu)) > 1
    assert int((cuda != cpu).sum()) <= differing


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * float((a & b).sum()) / max(1.0, float(a.sum() + b.sum()))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
@pytest.mark.parametrize("name", sorted(OBJECTS))
def test_autocast_keeps_every_objects_mask(name, dtype, no_tf32):
    """Autocast (``amp``, the bundle's default on CUDA) in ``dtype``: each object's Dice against float32 >= 0.99."""
    image, objects = OBJECTS[name]
    network = load_network(BUNDLE / "models").to("cuda")
    reference = run_session(network, image, objects)
    saved = torch.get_autocast_dtype("cuda")
    torch.set_autocast_dtype("cuda", dtype)  # what torch.autocast("cuda") in PreparedImage takes
    try:
        masks = run_session(network, image, objects, amp=True)
    finally:
        torch.set_autocast_dtype("cuda", saved)
    scores = [dice(m, r) for m, r in zip(masks, reference)]
    print(f"{name} {dtype}: Dice per object against float32 {[round(s, 4) for s in scores]}")
    assert min(scores) >= 0.99


def test_training_with_amp_on_cuda_lowers_the_loss_and_saves_a_checkpoint_that_loads(tmp_path):
    """train.json on CUDA (AMP is its default there) for a few epochs of one case; then ``load_network`` on it."""
    from test_train_workflow import workflow

    losses = []
    wf = workflow(tmp_path, epochs=6, val_interval=1000, learning_rate=1e-3, warmup_iterations=0)
    wf.initialize()
    trainer = wf.parser.get_parsed_content("train#trainer")
    assert trainer.amp and str(wf.parser.get_parsed_content("device")).startswith("cuda")
    from ignite.engine import Events

    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: losses.append(float(e.state.output["loss"])))
    wf.run()
    wf.finalize()
    print(f"losses on CUDA with AMP: {[round(x, 4) for x in losses]}")
    assert len(losses) == 6 and all(np.isfinite(losses))
    assert np.mean(losses[-2:]) < np.mean(losses[:2])
    network = load_network(tmp_path / "models")  # strict, sizes from the file
    saved = torch.load(tmp_path / "models" / "model.pt", weights_only=True)["model_state_dict"]
    for key, value in network.state_dict().items():
        assert torch.equal(value, saved[key].to(value.dtype))


def torchrun_one(configs: list[str], args: list[str], tmp_path: Path) -> str:
    """``torchrun --nproc_per_node 1`` of ``monai.bundle run``; a probe overlay prints the backend."""
    probe = tmp_path / "probe.json"
    probe.write_text(
        json.dumps({"+initialize": ["$print('backend:', dist.get_backend(), flush=True)"]}), encoding="utf-8"
    )
    files = "[" + ", ".join(f"'{BUNDLE / 'configs' / c}'" for c in configs) + f", '{probe}']"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes=1", "--nproc_per_node=1"]
    cmd += ["-m", "monai.bundle", "run", "--config_file", files, "--bundle_root", str(BUNDLE), *args]
    done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, encoding="utf-8", errors="replace", timeout=1800)
    assert done.returncode == 0, done.stderr[-4000:]
    assert "terminate called" not in done.stderr
    return done.stdout + done.stderr


def test_torchrun_with_nccl_trains(tmp_path):
    from test_train_workflow import cli_args, tiny_overrides

    overrides = tiny_overrides(tmp_path, epochs=1, val_interval=1000)
    log = torchrun_one(["train.json", "multi_gpu_train.json"], cli_args(overrides), tmp_path)
    assert "backend: nccl" in log
    assert (tmp_path / "models" / "model.pt").is_file()


def test_torchrun_with_nccl_runs_the_batch(tmp_path):
    configs = ["inference.json", "batch_inference.json", "multi_gpu_batch_inference.json"]
    args = ["--input_dir", str(BUNDLE / "sample_data"), "--prompts_file", str(BUNDLE / "sample_data/demo_prompts.json")]
    log = torchrun_one(configs, args + ["--output_dir", str(tmp_path / "out")], tmp_path)
    assert "backend: nccl" in log
    with open(tmp_path / "out" / "batch_report.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert rows and all(r["status"] == "done" for r in rows)


def test_monailabel_app_on_cuda_answers_a_click_as_the_cpu(tmp_path_factory, monkeypatch):
    """The server with ``--conf device cuda`` against an in-process CPU session (the app decodes in float32)."""
    import test_monailabel_app as app

    _, _, differing = cpu_and_cuda_sessions("ct", monkeypatch)
    root = tmp_path_factory.mktemp("monailabel_cuda")
    studies = root / "studies"
    studies.mkdir()
    (studies / CT.name).write_bytes(CT.read_bytes())
    log = root / "server.log"
    proc, url = app._start(
        app._app_copy(root), studies, log, "--conf", "bundle", str(BUNDLE), "--conf", "device", "cuda"
    )
    try:
        app._wait_up(proc, url, log)
        client = app.MONAILabelClient(url, client_id="cuda")
        name, click, _ = app.MAIN_JOB[0]
        mask_image, _ = app._infer(client, "example_ct", [click], label=name)
    finally:
        app._stop(proc)
    assert "cuda" in log.read_text(encoding="utf-8")
    network = load_network(BUNDLE / "models")
    expected = run_session(network, CT, [[(click, True)]])[0]
    answer = np.asarray(mask_image.dataobj) > 0
    print(f"MONAI Label on CUDA: {int((answer != expected).sum())} voxels differ from the CPU (bound {differing})")
    assert expected.sum() > 100 and int((answer != expected).sum()) <= differing
