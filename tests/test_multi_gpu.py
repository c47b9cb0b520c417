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
"""multi_gpu_train.json and multi_gpu_evaluate.json under torchrun, two gloo processes on the CPU.

Training: gradients really are all-reduced. Evaluation: each rank takes its cases and rank 0 reports all of them.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from test_train_workflow import CASES, CONFIGS, TINY_NET, cli_args, tiny_overrides

SAVE = (
    "$torch.save({k: v.detach().clone() for k, v in @network.state_dict().items()}, "
    "@output_dir + '/%s_rank' + os.environ['RANK'] + '.pt')"
)


def _torchrun(config_files: list, overrides: dict) -> None:
    """``monai.bundle run`` of ``config_files`` (train.json first) with ``overrides`` on two gloo ranks, started from a
    folder outside the bundle (``bundle_root`` is in the overrides)."""
    files = "[" + ", ".join(f"'{f}'" for f in config_files) + "]"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes=1", "--nproc_per_node=2"]
    cmd += ["-m", "monai.bundle", "run", "--config_file", files] + cli_args(overrides)
    elsewhere = Path(overrides["output_dir"]).parent / "elsewhere"
    elsewhere.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(cmd, cwd=elsewhere, capture_output=True, encoding="utf-8", errors="replace", timeout=600)
    assert done.returncode == 0, done.stderr[-5000:]
    # scripts.end_distributed freed the group in finalize (else its threads run into the exit, where a rank can abort)
    assert "still referenced after destroy_process_group" not in done.stdout + done.stderr


def _run_two_ranks(tmp_path, ddp: bool) -> dict[str, dict[str, torch.Tensor]]:
    """One training step on each of two ranks (one case each); the parameters of each rank before and after."""
    multi = json.loads((CONFIGS / "multi_gpu_train.json").read_text(encoding="utf-8"))
    probe = {
        # after initialize has built the (DDP-wrapped) trainer, i.e. after DDP's broadcast from rank 0
        "initialize": multi["initialize"] + [SAVE % "start"],
        "finalize": [SAVE % "end"] + multi["finalize"],
    }
    if not ddp:  # the reference's bug: every rank trains its own replica
        probe["train#trainer#network"] = "@click_simulation"
    probe_file = tmp_path / "probe.json"
    probe_file.write_text(json.dumps(probe), encoding="utf-8")
    overrides = tiny_overrides(
        tmp_path, cases=CASES, epochs=1, val_fraction=0.0, val_interval=1000, warmup_iterations=0
    )
    (tmp_path / "eval").mkdir(parents=True)
    _torchrun([CONFIGS / "train.json", CONFIGS / "multi_gpu_train.json", probe_file], overrides)
    return {
        f"{when}{rank}": torch.load(tmp_path / "eval" / f"{when}_rank{rank}.pt", weights_only=True)
        for when in ("start", "end")
        for rank in (0, 1)
    }


def _same(a: dict, b: dict) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_ddp_step_keeps_both_ranks_identical(tmp_path):
    p = _run_two_ranks(tmp_path, ddp=True)
    assert _same(p["start0"], p["start1"]), "DDP starts every rank from rank 0's parameters"
    assert not _same(p["start0"], p["end0"]), "one optimizer step changed the parameters"
    assert _same(p["end0"], p["end1"]), "after a step on different data both ranks hold the same parameters"
    assert (tmp_path / "models" / "model.pt").is_file()  # rank 0 saved
    saved = torch.load(tmp_path / "models" / "model.pt", weights_only=True)
    assert saved["network_config"]["encoder_embed_dim"] == TINY_NET["encoder_embed_dim"]  # the sizes travel along
    state = saved["model_state_dict"]
    assert not any(k.startswith(("module.", "network.")) for k in state)
    assert _same(state, p["end0"])


@pytest.mark.slow
def test_without_ddp_the_ranks_drift_apart(tmp_path):
    """The control: calling the bare module (the reference's bug) leaves the ranks with different parameters."""
    p = _run_two_ranks(tmp_path, ddp=False)
    assert not _same(p["end0"], p["end1"])


def _rows(path) -> list[tuple]:
    with open(path, encoding="utf-8") as f:
        return sorted(
            (r["case"], r["class_id"], r["click"], r["point"], r["dice"], r["nsd"]) for r in csv.DictReader(f)
        )


@pytest.mark.slow
def test_two_rank_evaluation_reports_every_case_as_one_process_does(tmp_path, evaluated):
    """Each rank evaluates one of the two cases; rank 0's reports hold both, equal to the one-process run."""
    overrides = tiny_overrides(
        tmp_path,
        cases=CASES,
        num_clicks=3,
        best_over_clicks=True,
        eval_checkpoint=str(evaluated / "models" / "model.pt"),
    )
    _torchrun([CONFIGS / "train.json", CONFIGS / "evaluate.json", CONFIGS / "multi_gpu_evaluate.json"], overrides)
    two_ranks, one = tmp_path / "eval", evaluated / "eval"
    assert {r[0] for r in _rows(two_ranks / "nclick_metrics.csv")} == {"example_ct_sm", "example_mr_sm"}
    assert _rows(two_ranks / "nclick_metrics.csv") == _rows(one / "nclick_metrics.csv")
    summary, expected = (json.loads((d / "nclick_summary.json").read_text(encoding="utf-8")) for d in (two_ranks, one))
    assert summary["num_curves"] == 4 and summary.keys() == expected.keys()
    for key in ("dice_final", "nsd_final", "dice_auc", "best_dice"):
        assert summary[key] == pytest.approx(expected[key])
