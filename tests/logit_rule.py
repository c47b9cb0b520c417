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
"""The rule for comparing masks of two runtimes (CPU and CUDA, torch and onnxruntime): equal voxel for voxel, except
where the reference's logit is within 1e-3 of 0 (PARITY.md), counted; and the recorder that reads those logits."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

NEAR_ZERO = 1e-3


def assert_mask_within_rule(mask: np.ndarray, expected: np.ndarray, reference_logits: np.ndarray) -> int:
    """Masks equal except where the reference logit is within :data:`NEAR_ZERO` of 0; returns how many differ.

    Args:
        mask: the mask under test.
        expected: the reference's mask.
        reference_logits: the reference's logits, the masks' shape.
    """
    differ = mask != expected
    assert np.all(np.abs(reference_logits[differ]) < NEAR_ZERO), "a mask differs where the logit is not near 0"
    return int(differ.sum())


def recording(fn: Callable[[torch.Tensor], torch.Tensor], record: list) -> Callable[[torch.Tensor], torch.Tensor]:
    """``fn`` (a network's ``upsample``: every window mask is ``upsample(...) > 0``) keeping a CPU copy of each output.

    Args:
        fn: the function to wrap.
        record: where the outputs go, in call order.
    """

    def wrapped(low_res: torch.Tensor) -> torch.Tensor:
        out = fn(low_res)
        record.append(out.detach().float().cpu().clone())
        return out

    return wrapped


def window_differences(reference: Sequence[torch.Tensor], other: Sequence[torch.Tensor]) -> int:
    """Voxels where two runs' window masks differ, all checked against the rule (same number of windows decoded).

    Args:
        reference: the reference run's recorded logits.
        other: the other run's, in the same order.
    """
    assert len(other) == len(reference) > 0, "the two runs decoded different numbers of windows"
    return sum(assert_mask_within_rule(o.numpy() > 0, r.numpy() > 0, r.numpy()) for r, o in zip(reference, other))
