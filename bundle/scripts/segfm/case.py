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
"""One SegFM case (``.npz``, as the official evaluator writes it), read and checked; its image's geometry.

Layout: ``imgs`` (D, H, W) = (z, y, x) uint8; ``spacing`` 3 floats in the order ``(x, y, z)`` (what SimpleITK's
``GetSpacing`` gives next to ``GetArrayFromImage``'s ``(z, y, x)`` array; the organisers' preprocessing stores it so
and the official NSD uses it unchanged); optional ``boxes``, one dict per class (``z_min``, ``z_max``,
``z_mid_x_min``, ``z_mid_y_min``, ``z_mid_x_max``, ``z_mid_y_max``: a 2-D box on slice ``z_mid`` spanning the
closed slice range); from the second step ``clicks`` (per class ``{"fg": [[z, y, x], ...], "bg": [...]}``, array
indices), ``clicks_order`` (per class ``"fg"``/``"bg"`` in time order, ``None`` once the class is perfect) and
``prev_pred`` (D, H, W).
"""

from __future__ import annotations

import pickle
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from monai.data import MetaTensor

__all__ = ["SegfmClass", "SegfmCase", "case_from_arrays", "read_case", "case_image"]


@dataclass
class SegfmClass:
    """The prompts of one class, in array indices ``(z, y, x)``.

    Args:
        box: lowest and highest corner voxels ``(2, 3)`` (inclusive), or ``None``.
        clicks: ``[(point (3,), positive)]`` in the order they were given (``clicks_order``).
    """

    box: np.ndarray | None
    clicks: list[tuple[np.ndarray, bool]] = field(default_factory=list)


@dataclass
class SegfmCase:
    """A case: its name, image, spacing as stored ``(x, y, z)``, classes 1..K and the previous prediction."""

    name: str
    imgs: np.ndarray
    spacing: np.ndarray
    classes: list[SegfmClass]
    prev_pred: np.ndarray | None

    @property
    def voxel_spacing(self) -> tuple[float, float, float]:
        """The spacing along the array's axes ``(z, y, x)``: the stored ``(x, y, z)`` reversed."""
        return tuple(float(s) for s in self.spacing[::-1])  # type: ignore[return-value]


def case_image(case: SegfmCase) -> MetaTensor:
    """The case's image ``(1, D, H, W)`` with an affine: spacing along ``(z, y, x)`` and SimpleITK's axis directions
    (the array of an LPS image read with ``GetArrayFromImage``: z to S, y to P, x to L).

    Args:
        case: the case.
    """
    from ..inference.image_input import as_image

    return as_image(case.imgs.astype(np.float32), spacing=case.voxel_spacing, axcodes="SPL")


def _fail(name: str, message: str) -> ValueError:
    return ValueError(f"case {name}: {message}")


def _box(name: str, k: int, value, shape: Sequence[int]) -> np.ndarray:
    keys = ("z_min", "z_max", "z_mid_x_min", "z_mid_y_min", "z_mid_x_max", "z_mid_y_max")
    if not isinstance(value, dict) or any(key not in value for key in keys):
        raise _fail(name, f"box of class {k} must be a dict with {', '.join(keys)}, got {value!r}.")
    lo = np.array([value["z_min"], value["z_mid_y_min"], value["z_mid_x_min"]], dtype=np.float64)
    hi = np.array([value["z_max"], value["z_mid_y_max"], value["z_mid_x_max"]], dtype=np.float64)
    if (lo > hi).any():
        raise _fail(name, f"box of class {k} has a minimum above its maximum ({value}).")
    if (lo < 0).any() or (hi > np.asarray(shape) - 1).any():
        raise _fail(name, f"box of class {k} ({value}) lies outside the image of shape {tuple(shape)} (z, y, x).")
    return np.stack([lo, hi])


def _clicks(name: str, k: int, value, order, shape: Sequence[int]) -> list[tuple[np.ndarray, bool]]:
    if not isinstance(value, dict):
        raise _fail(name, f"clicks of class {k} must be a dict with 'fg' and 'bg' lists, got {value!r}.")
    queues = {}
    for kind in ("fg", "bg"):
        points = np.asarray(value.get(kind, []), dtype=np.float64).reshape(-1, 3) if len(value.get(kind, [])) else []
        bad = [p for p in points if (p < 0).any() or (p > np.asarray(shape) - 1).any()]
        if bad:
            raise _fail(
                name, f"{kind} click {bad[0].tolist()} of class {k} lies outside the image of shape {tuple(shape)}."
            )
        queues[kind] = list(points)
    order = [] if order is None else [o for o in order if o is not None]
    if sorted(order) != sorted(["fg"] * len(queues["fg"]) + ["bg"] * len(queues["bg"])):
        raise _fail(
            name,
            f"clicks_order of class {k} does not list its {len(queues['fg'])} fg and {len(queues['bg'])} bg clicks.",
        )
    return [(queues[kind].pop(0), kind == "fg") for kind in order]


def read_case(path: str | Path) -> SegfmCase:
    """Read and check one case.

    Args:
        path: the ``.npz`` file.

    Raises:
        ValueError: one line naming the case, for an unreadable file, no ``imgs``, a bad spacing, boxes and clicks of
            different class counts, a box outside the image or with min > max, a click outside the image, or a
            ``prev_pred`` of another shape.
    """
    path = Path(path)
    name = path.name[: -len(".npz")] if path.name.endswith(".npz") else path.name
    try:
        with np.load(path, allow_pickle=True) as data:
            arrays = {key: data[key] for key in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, pickle.UnpicklingError) as e:
        raise _fail(name, f"cannot read {path}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    return case_from_arrays(name, arrays)


def case_from_arrays(name: str, arrays: dict) -> SegfmCase:
    """Check one case given as its arrays (what the ``.npz`` holds).

    Args:
        name: the case's name, for messages.
        arrays: ``imgs``, ``spacing`` and the prompts (see the module docstring).

    Raises:
        ValueError: as :func:`read_case`.
    """
    if "imgs" not in arrays:
        raise _fail(name, "no 'imgs' array (the image, (D, H, W) uint8).")
    imgs = arrays["imgs"]
    if imgs.ndim != 3:
        raise _fail(name, f"'imgs' must be (D, H, W), got shape {imgs.shape}.")
    spacing = np.asarray(arrays.get("spacing", []), dtype=np.float64).reshape(-1)
    if spacing.shape != (3,) or not (spacing > 0).all():
        raise _fail(name, f"'spacing' must be three positive numbers, got {spacing.tolist()}.")
    boxes = arrays.get("boxes")
    clicks = arrays.get("clicks")
    order = arrays.get("clicks_order")
    if boxes is None and clicks is None:
        raise _fail(name, "neither 'boxes' nor 'clicks': nothing to segment.")
    counts = {what: len(v) for what, v in (("boxes", boxes), ("clicks", clicks)) if v is not None}
    if len(set(counts.values())) > 1:
        raise _fail(name, f"boxes and clicks have different class counts ({counts['boxes']} vs {counts['clicks']}).")
    if clicks is not None and (order is None or len(order) != len(clicks)):
        raise _fail(name, "'clicks' needs a 'clicks_order' with one entry per class.")
    num_classes = next(iter(counts.values()))
    classes = []
    for k in range(num_classes):
        box = None if boxes is None else _box(name, k + 1, boxes[k], imgs.shape)
        steps = [] if clicks is None else _clicks(name, k + 1, clicks[k], list(order[k]), imgs.shape)
        classes.append(SegfmClass(box, steps))
    prev = arrays.get("prev_pred")
    if prev is not None and prev.shape != imgs.shape:
        raise _fail(name, f"'prev_pred' has shape {prev.shape}, 'imgs' {imgs.shape}.")
    return SegfmCase(name, imgs, spacing, classes, prev)
