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
"""Checkpoints load strictly from every container the project meets, and wrong files fail loudly."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from conftest import BUNDLE

from scripts.networks import SAMMed3D, load_checkpoint, read_state_dict

SMALL = {"encoder_embed_dim": 48, "encoder_depth": 2, "encoder_num_heads": 4, "encoder_global_attn_indexes": (1,)}


@pytest.fixture()
def small_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return SAMMed3D(**SMALL).state_dict()


def assert_loaded(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    loaded = model.state_dict()
    assert set(loaded) == set(state)
    assert all(torch.equal(loaded[k], state[k]) for k in state)


@pytest.mark.parametrize("container", ["official", "plain", "ddp"])
def test_loads_every_container(tmp_path, small_state, container):
    wrapped = {
        "official": {"model_state_dict": small_state, "epoch": 7, "optimizer_state_dict": {"state": {}}, "lr": [1e-4]},
        "plain": small_state,
        "ddp": {f"module.{k}": v for k, v in small_state.items()},
    }[container]
    path = tmp_path / "ckpt.pth"
    torch.save(wrapped, path)
    assert_loaded(load_checkpoint(SAMMed3D(**SMALL), path), small_state)


def test_missing_unexpected_and_misshaped_keys_are_listed(tmp_path, small_state):
    state = dict(small_state)
    del state["image_encoder.neck.0.weight"]
    state["image_encoder.extra.weight"] = torch.zeros(1)
    state["mask_decoder.iou_token.weight"] = torch.zeros(2, 384)
    torch.save(state, tmp_path / "bad.pt")
    with pytest.raises(ValueError) as err:
        load_checkpoint(SAMMed3D(**SMALL), tmp_path / "bad.pt")
    message = str(err.value)
    assert "1 missing: image_encoder.neck.0.weight" in message
    assert "1 unexpected: image_encoder.extra.weight" in message
    assert "1 mis-shaped: mask_decoder.iou_token.weight (2, 384) != (1, 384)" in message
    assert "\n" not in message


def test_checkpoint_of_another_size_is_refused(tmp_path, small_state):
    torch.save(small_state, tmp_path / "small.pt")
    with pytest.raises(ValueError, match=r"does not match the network \(.*mis-shaped: image_encoder.blocks.0"):
        load_checkpoint(SAMMed3D(**{**SMALL, "encoder_embed_dim": 96}), tmp_path / "small.pt")


def test_unreadable_files_fail_clearly(tmp_path):
    (tmp_path / "notes.txt").write_text("not a checkpoint", encoding="utf-8")
    with pytest.raises(ValueError, match="is not a readable PyTorch checkpoint"):
        read_state_dict(tmp_path / "notes.txt")
    torch.save({"model": torch.nn.Linear(2, 2)}, tmp_path / "pickled_module.pt")  # needs unpickling of code
    with pytest.raises(ValueError, match=r"is not a readable PyTorch checkpoint \(weights_only=True\)"):
        read_state_dict(tmp_path / "pickled_module.pt")
    torch.save({"epoch": 3}, tmp_path / "no_weights.pt")
    with pytest.raises(ValueError, match="holds no state_dict"):
        read_state_dict(tmp_path / "no_weights.pt")
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        read_state_dict(tmp_path / "absent.pth")


def run_convert(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "scripts.networks.checkpoint", "convert", *args]
    return subprocess.run(cmd, cwd=BUNDLE, capture_output=True, encoding="utf-8", errors="replace")


def test_convert_command_writes_plain_state_dict(tmp_path, parity_weights):
    src, dst = tmp_path / "sam_med3d_turbo.pth", tmp_path / "models" / "model.pt"
    torch.save({"model_state_dict": parity_weights, "epoch": 1}, src)
    done = run_convert(str(src), str(dst))
    assert done.returncode == 0, done.stderr
    assert "wrote" in done.stdout and "324 tensors" in done.stdout
    converted = torch.load(dst, weights_only=True)
    assert set(converted) == set(parity_weights)
    assert all(torch.equal(converted[k], parity_weights[k]) for k in parity_weights)
    again = run_convert(str(src), str(dst))
    assert again.returncode != 0 and "exists" in again.stderr


def test_convert_refuses_wrong_checkpoint_and_writes_nothing(tmp_path, small_state):
    """Any SAM-Med3D size converts (the network is sized to the weights); a key set that fits none is refused."""
    state = dict(small_state)
    del state["mask_decoder.iou_token.weight"]
    state["image_encoder.extra.weight"] = torch.zeros(1)
    src, dst = tmp_path / "broken.pth", tmp_path / "model.pt"
    torch.save({"model_state_dict": state}, src)
    done = run_convert(str(src), str(dst))
    assert done.returncode != 0
    assert "does not match the network" in done.stderr and "mask_decoder.iou_token.weight" in done.stderr
    assert not dst.exists() and list(tmp_path.iterdir()) == [src]


def test_convert_sizes_the_network_to_the_weights(tmp_path, small_state):
    src, dst = tmp_path / "small.pth", tmp_path / "model.pt"
    torch.save({"model_state_dict": small_state, "epoch": 3}, src)
    done = run_convert(str(src), str(dst))
    assert done.returncode == 0, done.stderr[-2000:]
    assert_loaded(load_checkpoint(SAMMed3D(**SMALL), dst), small_state)
