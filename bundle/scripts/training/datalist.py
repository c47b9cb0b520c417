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
"""Training and evaluation datalists from nnU-Net folders, MSD datalist JSON or the upstream SAM-Med3D layout.

Sources accepted by :func:`load_datalist`:
    * a list of ``{"image": ..., "label": ...}`` dicts (paths relative to ``base_dir``);
    * an MSD-style datalist JSON file (``{"training": [{"image": ..., "label": ...}, ...]}``; paths relative to the
      file's folder unless ``base_dir`` is given);
    * a folder holding ``imagesTr/`` and ``labelsTr/`` at any depth: nnU-Net (``imagesTr/<case>_0000.nii.gz`` with
      ``labelsTr/<case>.nii.gz``, multi-class) and the upstream layout ``data/<target>/<modality>_<dataset>/``
      (``imagesTr/<case>.nii.gz`` with ``labelsTr/<case>.nii.gz``, binary), which may be mixed.

:func:`prepare_datalist` then checks every pair before training starts (files exist, label grid = image grid) and
lists each case's classes, so one class can be drawn per item on the fly from multi-class labels (no binarised
copies). An empty datalist, a mis-gridded label or a requested class that no case holds raise ``ValueError``.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np

__all__ = ["IMAGE_SUFFIXES", "load_datalist", "check_grid", "case_classes", "prepare_datalist", "split_datalist"]

logger = logging.getLogger(__name__)
IMAGE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd")
# Largest difference (mm) between image and label affine entries that still counts as the same grid.
GRID_ATOL_MM = 1e-3


def _strip_suffix(name: str) -> str | None:
    for suffix in IMAGE_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return None


def _pairs_in(images_dir: Path) -> list[dict]:
    labels_dir = images_dir.parent / "labelsTr"
    if not labels_dir.is_dir():
        raise ValueError(f"{images_dir} has no sibling labelsTr/ folder.")
    labels = {}
    for path in sorted(labels_dir.iterdir()):
        stem = _strip_suffix(path.name)
        if stem is not None and not path.name.startswith("."):
            labels[stem] = path
    items = []
    for path in sorted(images_dir.iterdir()):
        stem = _strip_suffix(path.name)
        if stem is None or path.name.startswith("."):
            continue
        case = stem[:-5] if stem.endswith("_0000") else stem  # nnU-Net channel 0; upstream has no channel suffix
        if stem[-5:-4] == "_" and stem[-4:].isdigit() and stem[-4:] != "0000":
            continue  # further nnU-Net channels: SAM-Med3D takes one channel
        if case not in labels:
            raise ValueError(f"{path} has no label: expected {labels_dir / (case + path.name[len(stem):])}.")
        dataset = images_dir.parent
        items.append({"image": str(path), "label": str(labels[case]), "case": f"{dataset.name}/{case}"})
    return items


def load_datalist(source: str | os.PathLike | Sequence[dict], base_dir: str | None = None, key: str = "training"):
    """Read a datalist from any supported source (see the module docstring).

    Args:
        source: a list of dicts, a datalist JSON file, or a data folder.
        base_dir: folder that relative paths refer to (default: the JSON file's folder, or the working directory).
        key: the JSON section to read.

    Returns:
        A list of dicts with absolute ``image`` and ``label`` paths and a ``case`` name.
    """
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.is_dir():
            folders = sorted(p for p in path.rglob("imagesTr") if p.is_dir())
            if path.name == "imagesTr":
                folders = [path]
            if not folders:
                raise ValueError(f"{path} holds no imagesTr/ folder (nnU-Net or upstream SAM-Med3D layout).")
            return [item for folder in folders for item in _pairs_in(folder)]
        if not path.is_file():
            raise FileNotFoundError(f"datalist source not found: {path}")
        with open(path, encoding="utf-8") as f:
            content = json.load(f)
        if key not in content:
            raise ValueError(f"{path} has no '{key}' section (sections: {sorted(content)}).")
        entries, root = content[key], Path(base_dir) if base_dir else path.parent
    else:
        entries, root = list(source), Path(base_dir) if base_dir else Path.cwd()
    items = []
    for entry in entries:
        if not isinstance(entry, dict) or "image" not in entry or "label" not in entry:
            raise ValueError(f"each datalist entry needs 'image' and 'label', got {entry!r}.")
        item = dict(entry)
        for k in ("image", "label"):
            if isinstance(item[k], (list, tuple)):
                raise ValueError(f"{k} must be one file (SAM-Med3D takes one channel), got {item[k]!r}.")
            item[k] = str(Path(item[k]) if Path(item[k]).is_absolute() else root / item[k])
        item.setdefault("case", _strip_suffix(Path(item["image"]).name) or Path(item["image"]).name)
        items.append(item)
    return items


def _grid(path: str) -> tuple[tuple[int, ...], np.ndarray]:
    if path.endswith((".nii", ".nii.gz")):
        header = nib.load(path)
        return tuple(int(s) for s in header.shape[:3]), np.asarray(header.affine, dtype=np.float64)
    from monai.transforms import LoadImage

    img = LoadImage(image_only=True, ensure_channel_first=True)(path)
    return tuple(int(s) for s in img.shape[1:4]), np.asarray(img.affine, dtype=np.float64)


def check_grid(image: str, label: str) -> None:
    """Raise a ``ValueError`` unless ``label`` lies on ``image``'s voxel grid (shape and affine).

    Args:
        image: image file.
        label: label file.
    """
    for path in (image, label):
        if not Path(path).is_file():
            raise FileNotFoundError(f"datalist file not found: {path}")
    (ishape, iaff), (lshape, laff) = _grid(image), _grid(label)
    if ishape != lshape or not np.allclose(iaff, laff, atol=GRID_ATOL_MM):
        raise ValueError(
            f"label {label} is not on the grid of its image {image}: shape {lshape} vs {ishape}, "
            f"affine max difference {np.abs(iaff - laff).max():.4g} mm; resample the label onto the image first."
        )


def case_classes(label: str) -> dict[int, float]:
    """Classes of a label file and their volumes in mm^3.

    Args:
        label: label file (integer class ids, 0 = background).
    """
    if label.endswith((".nii", ".nii.gz")):
        img = nib.load(label)
        data, zooms = np.asarray(img.dataobj), img.header.get_zooms()[:3]
    else:
        from monai.transforms import LoadImage

        img = LoadImage(image_only=True)(label)
        data = img.numpy()
        zooms = np.linalg.norm(np.asarray(img.affine)[:3, :3], axis=0)
    if data.dtype.kind == "f" and not np.all(data == np.round(data)):
        raise ValueError(f"{label} holds non-integer values: a label map has integer class ids.")
    ids, counts = np.unique(data.astype(np.int64), return_counts=True)
    voxel = float(np.prod(np.asarray(zooms, dtype=np.float64)))
    return {int(i): float(c) * voxel for i, c in zip(ids, counts) if i != 0}


def prepare_datalist(
    source: str | os.PathLike | Sequence[dict],
    class_ids: Sequence[int] | None = None,
    min_volume_mm3: float = 0.0,
    base_dir: str | None = None,
    key: str = "training",
) -> list[dict]:
    """Load and check a datalist; each item gets ``classes``, the class ids it can be trained or evaluated on.

    Args:
        source: see :func:`load_datalist`.
        class_ids: the classes to use (default: every class found).
        min_volume_mm3: classes smaller than this in a case are not drawn from that case (the paper drops masks
            under 1 cm^3).
        base_dir: see :func:`load_datalist`.
        key: see :func:`load_datalist`.

    Returns:
        The items that hold at least one usable class (the others are named in a warning).

    Raises:
        ValueError: empty datalist, a label off its image's grid, a requested class absent from every case, or no
            usable class at all.
    """
    items = load_datalist(source, base_dir=base_dir, key=key)
    if not items:
        raise ValueError(f"the datalist from {source!r} is empty: no image/label pair to train or evaluate on.")
    wanted = None if class_ids is None else {int(c) for c in class_ids}
    kept, seen = [], set()
    for item in items:
        check_grid(item["image"], item["label"])
        volumes = case_classes(item["label"])
        present = {c for c in volumes if wanted is None or c in wanted}
        seen |= present
        usable = sorted(c for c in present if volumes[c] >= min_volume_mm3)
        if not usable:
            logger.warning(f"{item['case']}: no usable class (of {sorted(wanted or volumes)}): not used.")
            continue
        kept.append({**item, "classes": usable})
    missing = sorted((wanted or set()) - seen)
    if missing:
        raise ValueError(f"class(es) {missing} are missing from every case of the datalist ({len(items)} cases).")
    if not kept:
        raise ValueError(f"no case of the datalist holds a class of at least {min_volume_mm3} mm^3.")
    logger.info(f"datalist: {len(kept)} of {len(items)} cases, {len(seen)} classes")
    return kept


def split_datalist(items: Sequence[dict], val_fraction: float = 0.2) -> tuple[list[dict], list[dict]]:
    """Split into training and validation items: the last ``ceil(val_fraction * n)`` cases validate.

    With one case (or ``val_fraction`` 0) both parts are the whole list, and a warning says so.

    Args:
        items: the datalist.
        val_fraction: share of cases for validation.
    """
    items = list(items)
    n_val = math.ceil(val_fraction * len(items))
    if len(items) < 2 or n_val == 0:
        logger.warning("validation uses the training cases (one case, or val_fraction 0): it measures fitting only.")
        return items, items
    n_val = min(n_val, len(items) - 1)
    return items[:-n_val], items[-n_val:]
