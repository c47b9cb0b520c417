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
"""The multi-process overlays end their process group with its threads, so a torchrun rank cannot abort at exit.

``destroy_process_group`` alone leaves a DDP-held gloo group and its threads alive into interpreter finalisation
(where a rank sometimes died with ``terminate called without an active exception``); ``scripts.end_distributed``
releases the wrapper first. Each case runs in a fresh one-rank gloo process, so no group's threads outlive a test.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import BUNDLE

CONFIGS = BUNDLE / "configs"

# One rank, one DDP step and one all_gather (as training and evaluation end), then the group is ended by ``{end}``.
PROGRAM = """
import json, sys, weakref
sys.path.insert(0, {bundle!r})
import torch, torch.distributed as dist
from scripts.distributed import end_distributed, process_group_threads
dist.init_process_group("gloo", init_method="file://" + {store!r}, rank=0, world_size=1)
ddp = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(4, 1), find_unused_parameters=True)
ddp(torch.randn(2, 4)).sum().backward()
out = [torch.zeros(1)]
dist.all_gather(out, torch.ones(1))
alive_before = process_group_threads()
group = weakref.ref(dist.group.WORLD)
{end}
print(json.dumps({{"before": alive_before, "after": process_group_threads(), "freed": group() is None}}))
"""


def run_rank(tmp_path, end: str) -> dict:
    program = PROGRAM.format(bundle=str(BUNDLE), store=str(tmp_path / "store"), end=end)
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, encoding="utf-8", errors="replace", timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="thread names are read from /proc/self/task")
def test_end_distributed_joins_the_groups_threads(tmp_path):
    state = run_rank(tmp_path, "end_distributed(ddp)")
    assert state["before"], "a gloo group runs worker threads"
    assert state["after"] == [] and state["freed"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="thread names are read from /proc/self/task")
def test_destroy_process_group_alone_leaves_them_running_under_ddp(tmp_path):
    """The cause: the wrapper still holds the group, so its threads run on into interpreter exit."""
    state = run_rank(tmp_path, "dist.destroy_process_group()")
    assert state["after"] == state["before"] != [] and not state["freed"]


@pytest.mark.parametrize(
    "overlay, end",
    [
        ("multi_gpu_train.json", "$@scripts.end_distributed(@ddp_click_simulation)"),
        ("multi_gpu_evaluate.json", "$@scripts.end_distributed()"),
        ("multi_gpu_batch_inference.json", "$@scripts.end_distributed()"),
    ],
)
def test_every_multi_process_overlay_ends_its_group_this_way(overlay, end):
    """First in ``finalize`` (the batch overlay's exit status comes after it), and nothing else destroys the group."""
    config = json.loads((CONFIGS / overlay).read_text(encoding="utf-8"))
    assert config["finalize"][0] == end
    assert "destroy_process_group" not in json.dumps(config)
