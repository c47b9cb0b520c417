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
"""Training transforms: the inference preprocessing as MONAI dictionary transforms, plus one class per item.

The chain (``configs/train.json``) is the inference path of ``inferer.py`` step for step, so the network sees in
training what it gets at inference: ``LoadImaged(dtype=None)`` -> :class:`ResampleToSpacingd` (the reference's
corner-aligned 1.5 mm grid; linear for the image, nearest for the label) -> ``Orientationd("RAS")`` (what
``preprocessing.reorient_to_ras`` runs) -> cached -> :class:`RandClassWindowd` (draw a class, binarise, cut a
128^3 window around it, z-normalise over the window's voxels > 0 with the unbiased std, per item) -> ``RandFlipd``.
Choices against the reference's training code (see SAM_MED3D_REFERENCE.md d): no CT clipping (inference has none),
per-item statistics (not pooled over the batch), RAS order in training too.

The window centre: at inference a one-click window is centred on the click, a random voxel of the object; so with
probability ``click_centre_prob`` the window is centred on a random voxel of the class, otherwise on its bounding
box centre (the reference's training crop); either gets a uniform jitter of up to ``jitter`` voxels per axis.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform, Randomizable

from ..geometry import (
    ROI_SIZE,
    TARGET_SPACING,
    extract_window,
    label_bbox_center,
    resample_to_spacing,
    window_start,
    z_normalize,
)

__all__ = ["ResampleToSpacingd", "RandClassWindowd"]


class ResampleToSpacingd(MapTransform):
    """``preprocessing.resample_to_spacing`` (the reference's ``tio.Resample``) on dictionary items.

    Args:
        keys: keys to resample.
        spacing: output voxel size in mm.
        mode: ``"bilinear"`` or ``"nearest"``, one for all keys or one per key.
        allow_missing_keys: skip absent keys.
    """

    def __init__(
        self,
        keys: KeysCollection,
        spacing: Sequence[float] = TARGET_SPACING,
        mode: str | Sequence[str] = "bilinear",
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.spacing = tuple(float(s) for s in spacing)
        self.mode = [mode] * len(self.keys) if isinstance(mode, str) else list(mode)
        if len(self.mode) != len(self.keys):
            raise ValueError(f"{len(self.keys)} keys but {len(self.mode)} modes.")

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        d = dict(data)
        for key, mode in self.key_iterator(d, self.mode):
            d[key] = resample_to_spacing(d[key], self.spacing, mode=mode)
        return d


class RandClassWindowd(Randomizable, MapTransform):
    """Draw one class of the item, binarise the label to it, cut the window around it and z-normalise the image.

    Args:
        image_key: the image (resampled, RAS).
        label_key: the multi-class label on the same grid; replaced by the binary ``(1, S, S, S)`` float32 target.
        classes_key: the item's list of classes to draw from (``datalist.prepare_datalist``); removed from the item
            (lists of varying length do not collate). Without it, every non-zero value of the label is a class.
        class_key: where the drawn class id is stored.
        roi_size: window size.
        click_centre_prob: probability of centring on a random voxel of the class instead of its box centre.
        jitter: uniform shift of the centre, up to this many voxels per axis (at most ``roi_size // 2 - 1``, so the
            chosen voxel stays inside the window).
    """

    def __init__(
        self,
        image_key: str = "image",
        label_key: str = "label",
        classes_key: str = "classes",
        class_key: str = "class_id",
        roi_size: Sequence[int] = ROI_SIZE,
        click_centre_prob: float = 0.5,
        jitter: int = 8,
    ) -> None:
        MapTransform.__init__(self, [image_key, label_key])
        self.image_key, self.label_key = image_key, label_key
        self.classes_key, self.class_key = classes_key, class_key
        self.roi_size = tuple(int(s) for s in roi_size)
        self.click_centre_prob = float(click_centre_prob)
        self.jitter = int(jitter)
        if not 0 <= self.jitter < min(self.roi_size) // 2:
            raise ValueError(f"jitter must be in [0, {min(self.roi_size) // 2 - 1}], got {jitter}.")

    def randomize(self, data=None) -> None:
        """Nothing to pre-draw: the draws depend on the item (see ``__call__``)."""

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        d = dict(data)
        image, label = d[self.image_key], d[self.label_key]
        values = label.as_tensor()[0] if isinstance(label, MetaTensor) else torch.as_tensor(label)[0]
        classes = d.pop(self.classes_key, None)
        if classes is None:
            classes = [int(c) for c in torch.unique(values).tolist() if c != 0]
        order = self.R.permutation(len(classes))
        for index in order:  # a class can vanish when resampling to a coarser grid: try the next one
            class_id = int(classes[index])
            target = values == class_id
            voxels = torch.nonzero(target)
            if len(voxels):
                break
        else:
            name = getattr(label, "meta", {}).get("filename_or_obj", "label")
            raise ValueError(f"{name}: none of the classes {list(classes)} is left after resampling.")
        if self.R.rand() < self.click_centre_prob:
            centre = voxels[self.R.randint(len(voxels))].numpy().astype(np.float64)
        else:
            centre = label_bbox_center(target)
        centre = centre + self.R.randint(-self.jitter, self.jitter + 1, size=3)
        start = window_start(centre, self.roi_size)
        meta = {k: v for k, v in label.meta.items() if k != "affine"}  # the affine is passed explicitly
        binary = MetaTensor(target[None].to(torch.uint8), affine=label.affine, meta=meta)
        window_label = extract_window(binary, start, self.roi_size)
        if not window_label.any():  # a box centre outside a curved object: centre on one of its voxels instead
            start = window_start(voxels[self.R.randint(len(voxels))].numpy(), self.roi_size)
            window_label = extract_window(binary, start, self.roi_size)
        d[self.image_key] = z_normalize(extract_window(image, start, self.roi_size))
        d[self.label_key] = window_label.float()
        d[self.class_key] = class_id
        return d
