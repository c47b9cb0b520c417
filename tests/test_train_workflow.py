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
"""train.json end to end on tiny data: properties, a 1-epoch run, checkpoints, kill-and-resume, bad checkpoints."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import PIL.Image
import PIL.ImageSequence
import pytest
import torch
from conftest import BUNDLE, DATA
from ignite.engine import Events
from monai.bundle import ConfigWorkflow

TS = DATA / "totalsegmentator"
CONFIGS = BUNDLE / "configs"
CASES = [
    {"image": str(TS / "example_ct_sm.nii.gz"), "label": str(TS / "example_seg.nii.gz")},
    {"image": str(TS / "example_mr_sm.nii.gz"), "label": str(TS / "example_seg_mr.nii.gz")},
]
TINY_NET = {
    "encoder_embed_dim": 24,
    "encoder_depth": 2,
    "encoder_num_heads": 2,
    "encoder_global_attn_indexes": [1],
    "prompt_embed_dim": 24,
    "decoder_num_heads": 2,
    "decoder_mlp_dim": 48,
}
TINY = {
    **TINY_NET,
    "class_ids": [2, 5],  # right kidney and liver: in both the CT and the MRI label maps
    "num_rounds": 2,
    "num_workers": 0,
    "cpu_threads": 1,
    "val_num_clicks": 2,
    "log_interval": 1,
}


def tiny_overrides(tmp_path: Path, cases=CASES[:1], **more) -> dict:
    """Overrides of train.json for a tiny network on one or two small cases, writing under ``tmp_path``."""
    return {
        "bundle_root": str(BUNDLE),
        "ckpt_dir": str(tmp_path / "models"),
        "output_dir": str(tmp_path / "eval"),
        "data_source": list(cases),
        **TINY,
        **more,
    }


def cli_args(overrides: dict) -> list[str]:
    """The same overrides as ``monai.bundle run`` command-line arguments."""
    return [x for k, v in overrides.items() for x in (f"--{k}", repr(v) if not isinstance(v, str) else v)]


def workflow(tmp_path: Path, config_files=("train.json",), **overrides) -> ConfigWorkflow:
    wf = ConfigWorkflow(
        config_file=[str(CONFIGS / f) for f in config_files],
        meta_file=str(CONFIGS / "metadata.json"),
        logging_file=str(CONFIGS / "logging.conf"),
        workflow_type="train",
        **tiny_overrides(tmp_path, **overrides),
    )
    return wf


def test_one_epoch_with_validation_checkpoints_and_tensorboard(tmp_path):
    wf = workflow(tmp_path, epochs=1)
    wf.initialize()
    assert wf.check_properties() == []
    trainer = wf.parser.get_parsed_content("train#trainer")
    start = {k: v.clone() for k, v in wf.parser.get_parsed_content("network").state_dict().items()}
    wf.run()
    wf.finalize()
    assert trainer.state.iteration == 1 and trainer.state.epoch == 1
    models = tmp_path / "models"
    assert {p.name for p in models.iterdir()} >= {"model.pt", "model_best.pt", "checkpoint_final.pt"}
    state = torch.load(models / "checkpoint_final.pt", weights_only=True)
    assert set(state) == {"network", "optimizer", "lr_scheduler", "trainer"}  # no scaler on CPU (no AMP)
    assert state["trainer"]["iteration"] == 1 and state["optimizer"]["state"]  # a step was taken
    assert len(state["optimizer"]["param_groups"]) == 2
    saved = torch.load(models / "model.pt", weights_only=True)  # the official container's layout, plus the sizes
    assert set(saved) == {"model_state_dict", "network_config"}
    assert saved["network_config"]["decoder_num_heads"] == TINY_NET["decoder_num_heads"]
    plain = saved["model_state_dict"]
    assert not any(k.startswith(("module.", "network.")) for k in plain)
    # the warm-up starts above zero (warmup_multiplier), so the first step already moves the weights
    assert not all(torch.equal(plain[k], start[k]) for k in start)
    from scripts.networks import SAMMed3D, load_checkpoint

    load_checkpoint(SAMMed3D(**TINY_NET), models / "model.pt")  # the bundle's strict loader takes it
    from scripts import load_network

    assert load_network(models).config == SAMMed3D(**TINY_NET).config  # and the one call rebuilds its sizes
    assert 0.0 <= wf.parser.get_parsed_content("validate#evaluator").state.metrics["val_dice_final"] <= 1.0
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags, images = set(), {}
    for events in (tmp_path / "eval" / "tensorboard").glob("events.*"):
        acc = EventAccumulator(str(events), size_guidance={"images": 0})
        acc.Reload()
        tags |= set(acc.Tags()["scalars"])
        images |= {tag: acc.Images(tag) for tag in acc.Tags()["images"]}
    expected = {"train/loss", "train/dice_round_1", "train/dice_round_2", "train/lr_image_encoder"}
    assert expected | {"val_dice_final"} <= tags, tags
    # image summaries: the window, its target and the last round's probabilities, as 3-D GIFs (MONAI's handler)
    assert set(images) == {"input_0_HWD/image", "input_1_HWD/image", "output_HWD/image"}, sorted(images)
    frames = {}
    for tag, (event,) in images.items():
        gif = PIL.Image.open(io.BytesIO(event.encoded_image_string))
        frames[tag] = np.stack([np.asarray(f.convert("L")) for f in PIL.ImageSequence.Iterator(gif)])
        assert frames[tag].shape == (128, 128, 128), (tag, frames[tag].shape)  # the whole window, every slice
    assert len(np.unique(frames["input_0_HWD/image"])) > 100  # CT grey values
    assert set(np.unique(frames["input_1_HWD/image"])) == {0, 255}  # the binary target, present in the window


def test_amp_scaler_is_checkpointed_when_used(tmp_path):
    from scripts.training import checkpoint_objects

    class FakeTrainer:
        scaler = torch.amp.GradScaler("cpu")

    objects = checkpoint_objects(torch.nn.Linear(1, 1), None, None, FakeTrainer())
    assert objects["scaler"] is FakeTrainer.scaler


def _chained(exc: BaseException) -> str:
    messages = []
    while exc is not None:
        messages.append(str(exc))
        exc = exc.__cause__ or exc.__context__
    return "\n".join(messages)


def test_checkpoint_of_another_architecture_fails_before_training(tmp_path):
    from scripts.networks import SAMMed3D

    other = tmp_path / "other.pth"
    torch.save({"model_state_dict": SAMMed3D(**{**TINY_NET, "prompt_embed_dim": 48}).state_dict()}, other)
    wf = workflow(tmp_path, epochs=1, pretrained_checkpoint=str(other))
    with pytest.raises(Exception) as info:
        wf.initialize()
    assert "does not match the network" in _chained(info.value)
    assert not (tmp_path / "models").exists()  # nothing was trained or saved


def test_class_missing_from_every_case_fails_before_training(tmp_path):
    wf = workflow(tmp_path, epochs=1, class_ids=[2, 250])
    with pytest.raises(Exception) as info:
        wf.initialize()
    assert "[250] are missing from every case" in _chained(info.value)


@pytest.mark.slow
def test_killed_run_resumes_from_its_last_checkpoint(tmp_path):
    """Kill a run (SIGKILL) after its first mid-epoch checkpoint; the resumed run continues from that iteration."""
    overrides = tiny_overrides(
        tmp_path,
        cases=CASES,
        epochs=6,
        checkpoint_epoch_level=False,
        checkpoint_interval=3,  # iteration 3 = the middle of epoch 2 (2 iterations per epoch)
        val_interval=1000,
        val_fraction=0.0,
    )
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", str(CONFIGS / "train.json")]
    proc = subprocess.Popen(
        cmd + cli_args(overrides),
        cwd=tmp_path,  # outside the bundle: bundle_root is in the overrides
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        encoding="utf-8",
        errors="replace",
    )
    models = tmp_path / "models"
    deadline = time.time() + 300
    try:
        while not list(models.glob("checkpoint_iteration=*.pt")):
            assert proc.poll() is None, f"training ended before its first checkpoint:\n{proc.stderr.read()[-3000:]}"
            assert time.time() < deadline, "no checkpoint after 300 s"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (models / "model.pt").exists(), "the run had finished: nothing was interrupted"
    (checkpoint,) = models.glob("checkpoint_iteration=*.pt")
    saved = torch.load(checkpoint, weights_only=True)
    saved_iteration = saved["trainer"]["iteration"]
    assert saved_iteration >= 3 and saved_iteration % 3 == 0

    wf = workflow(
        tmp_path,
        cases=CASES,
        epochs=6,
        checkpoint_epoch_level=False,
        checkpoint_interval=3,
        val_interval=1000,
        resume_from=str(checkpoint),
    )
    wf.initialize()
    trainer = wf.parser.get_parsed_content("train#trainer")
    optimizer = wf.parser.get_parsed_content("optimizer")
    scheduler = wf.parser.get_parsed_content("lr_scheduler")
    seen = {}

    def first_iteration(engine):
        if not seen:
            seen["iteration"], seen["epoch"] = engine.state.iteration, engine.state.epoch
            seen["optimizer"] = {
                k: {n: t.clone() for n, t in v.items()} for k, v in optimizer.state_dict()["state"].items()
            }
            seen["scheduler_epoch"] = scheduler.last_epoch

    trainer.add_event_handler(Events.ITERATION_STARTED, first_iteration)
    wf.run()
    wf.finalize()
    assert seen["iteration"] == saved_iteration + 1, "the resumed run continues from the saved iteration"
    assert seen["epoch"] == saved_iteration // 2 + 1
    assert trainer.state.iteration == 12 and trainer.state.epoch == 6
    assert seen["scheduler_epoch"] == saved["lr_scheduler"]["last_epoch"]
    for key, values in saved["optimizer"]["state"].items():
        for name, tensor in values.items():
            assert torch.equal(seen["optimizer"][key][name], tensor), f"optimizer state {key}.{name} not restored"
    assert (models / "model.pt").exists()
    assert os.path.getsize(models / "checkpoint_final.pt") > 0
