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
"""``benchmarks/gpu_check.py`` on a machine without CUDA, and the parts of it that need no GPU."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
import torch
from conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import gpu_check  # noqa: E402


def test_without_cuda_it_says_so_and_exits_0():
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}  # no device even where there is one
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu_check.py")],
        capture_output=True,
        encoding="utf-8",
        errors="replace",
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "no CUDA device here" in done.stdout and "nothing to run" in done.stdout


def fits_up_to(largest: int):
    """A training step that runs out of memory above ``largest``, as CUDA does (0: nothing fits)."""
    tried = []

    def step(batch: int) -> None:
        tried.append(batch)
        if batch > largest:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    return step, tried


@pytest.mark.parametrize("largest, expected", [(0, 0), (1, 1), (5, 4), (64, 64), (1000, 256)])
def test_largest_batch_doubles_until_memory_runs_out(largest, expected):
    step, tried = fits_up_to(largest)
    assert gpu_check.largest_batch(step, limit=256) == expected
    assert tried[0] == 1 and all(b == 2 * a for a, b in zip(tried, tried[1:]))


def test_largest_batch_lets_other_errors_through():
    def step(batch: int) -> None:
        raise RuntimeError("shape mismatch")

    with pytest.raises(RuntimeError, match="shape mismatch"):
        gpu_check.largest_batch(step)


def test_every_figure_stands_beside_the_model_cards_cpu_figure():
    """The CPU figures quoted are the model card's (a changed card must change them here too)."""
    card = (ROOT / "bundle" / "docs" / "README.md").read_text(encoding="utf-8")
    for value in gpu_check.CPU_FIGURES.values():
        figures = re.findall(r"\d+(?:\.\d+)? (?:s|ms|it/s|cases/min)\b", value)
        assert figures and all(f in card for f in figures), value
    assert gpu_check.line("x", "1 s", "2 s") == "x: 1 s  | CPU (model card): 2 s"
