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
"""Click and box prompts of an inference request: parsing, validation in the original voxel space, world
coordinates."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..geometry import as_affine

__all__ = ["ObjectPrompt", "normalise_request", "parse_box", "parse_request_prompts", "voxel_points"]

CLICK_KEYS = ("points", "points_world", "point_labels", "box", "box_world")


@dataclass
class ObjectPrompt:
    """The clicks on one object, in voxel indices ``(i, j, k)`` of the original image (file voxel order).

    Args:
        name: object name (the key in ``objects``, or ``"object"``).
        label: value of the object in the output label map.
        points: ``(N, 3)`` float64 voxel indices.
        point_labels: ``(N,)`` int64, 1 positive, 0 negative; clicks are replayed in this order.
        box: ``(2, 3)`` float64 lowest and highest corner voxels (inclusive), given before the clicks, or ``None``.
    """

    name: str
    label: int
    points: np.ndarray
    point_labels: np.ndarray
    box: np.ndarray | None = None


def parse_box(
    value, spatial_shape: Sequence[int], affine: np.ndarray, world: bool = False, what: str = "box"
) -> np.ndarray:
    """Check a box and return its lowest and highest corner voxels ``(2, 3)`` (inclusive) on the image as stored.

    Args:
        value: two opposite corners ``[[i0, j0, k0], [i1, j1, k1]]``: voxel indices, lowest corner first, or RAS
            millimetres when ``world`` (any two opposite corners).
        spatial_shape: ``(I, J, K)`` of the image.
        affine: its 4x4 voxel-to-RAS affine.
        world: the corners are RAS millimetres.
        what: how the message names the box.

    Raises:
        ValueError: for a box that is not two corners of three numbers, a corner outside the image, or (voxel
            indices) a lowest corner above the highest.
    """
    raw = np.asarray(value, dtype=np.float64) if _is_numeric(value) else None
    if raw is None or raw.shape != (2, 3):
        unit = "RAS mm" if world else "voxel indices"
        raise ValueError(f"{what} must be two opposite corners [[i, j, k], [i, j, k]] ({unit}), got {value!r}.")
    corners = voxel_points(raw, spatial_shape, affine, world=world, what=f"{what} corner")
    if world:  # a RAS-mm box's corners need not be the lowest and highest voxels
        return np.stack([corners.min(axis=0), corners.max(axis=0)])
    if (corners[0] > corners[1]).any():
        raise ValueError(
            f"{what} {raw.tolist()}: its first corner must be the lowest voxel and the second the highest "
            "(min <= max along every axis)."
        )
    return corners


def _is_numeric(value) -> bool:
    try:
        np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        return False
    return True


def _object_prompt(name: str, label: int, spec: Mapping, shape: Sequence[int], affine: np.ndarray) -> ObjectPrompt:
    if "box" in spec and "box_world" in spec:
        raise ValueError(f"object '{name}': give its box either as 'box' (voxel indices) or 'box_world' (RAS mm).")
    box = None
    if "box" in spec or "box_world" in spec:
        world = "box_world" in spec
        box = parse_box(spec["box_world" if world else "box"], shape, affine, world, what=f"object '{name}': box")
    has_voxels, has_world = "points" in spec, "points_world" in spec
    if box is not None and not has_voxels and not has_world:
        return ObjectPrompt(name, label, np.zeros((0, 3)), np.zeros(0, dtype=np.int64), box)
    if has_voxels == has_world:
        raise ValueError(
            f"object '{name}': give its clicks either as 'points' (voxel indices i, j, k) or as 'points_world' "
            "(RAS millimetres), with 'point_labels'."
        )
    raw = np.asarray(spec["points" if has_voxels else "points_world"], dtype=np.float64)
    if raw.ndim != 2 or raw.shape[1] != 3 or raw.shape[0] == 0:
        raise ValueError(f"object '{name}': points must be a non-empty list of [i, j, k] triples, got {raw.tolist()}.")
    labels = np.asarray(spec.get("point_labels", []))
    if labels.shape != (raw.shape[0],):
        raise ValueError(
            f"object '{name}': {raw.shape[0]} points but {labels.size} point_labels; give one label per point."
        )
    if not np.isin(labels, (0, 1)).all():
        raise ValueError(f"object '{name}': point_labels must be 1 (positive) or 0 (negative), got {labels.tolist()}.")
    if box is None and not (labels == 1).any():
        raise ValueError(f"object '{name}' has only negative clicks: give at least one positive click (label 1).")
    points = voxel_points(raw, shape, affine, world=has_world, what=f"object '{name}': click")
    return ObjectPrompt(name, label, points, labels.astype(np.int64), box)


def _world_extent(shape: Sequence[int], affine: np.ndarray) -> str:
    corners = np.array(np.meshgrid(*[(-0.5, n - 0.5) for n in shape], indexing="ij")).reshape(3, -1).T
    world = corners @ affine[:3, :3].T + affine[:3, 3]
    return ", ".join(f"{'RAS'[a]} {world[:, a].min():.1f}..{world[:, a].max():.1f}" for a in range(3))


def voxel_points(
    points: np.ndarray | Sequence[Sequence[float]],
    spatial_shape: Sequence[int],
    affine: np.ndarray,
    world: bool = False,
    what: str = "click",
) -> np.ndarray:
    """Check that points lie inside the image and return them as voxel indices of the image as stored.

    Args:
        points: ``(N, 3)`` voxel indices ``(i, j, k)``, or RAS millimetres when ``world``.
        spatial_shape: ``(I, J, K)`` of the image.
        affine: its 4x4 voxel-to-RAS affine.
        world: the points are RAS millimetres.
        what: how the message names a point.

    Returns:
        ``(N, 3)`` float64 voxel indices.

    Raises:
        ValueError: for a point outside the image, with the image's extent in the points' own units.
    """
    raw = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    voxels = raw
    if world:
        homogeneous = np.concatenate([raw, np.ones((raw.shape[0], 1))], axis=1)
        voxels = (np.linalg.inv(affine) @ homogeneous.T).T[:, :3]
    upper = np.asarray(spatial_shape, dtype=np.float64) - 0.5
    outside = ((voxels < -0.5) | (voxels >= upper)).any(axis=1)
    if outside.any():
        shape = tuple(int(s) for s in spatial_shape)
        if world:
            extent = f"the image spans {_world_extent(shape, affine)} (RAS mm)"
        else:
            extent = f"voxel indices run from 0 to size - 1 along each axis of the image's shape {shape}"
        unit = "RAS mm" if world else "voxel indices"
        raise ValueError(f"{what} {raw[outside][0].tolist()} ({unit}) lies outside the image; {extent}.")
    return voxels


def _is_path(value) -> bool:
    return isinstance(value, (str, os.PathLike))


def normalise_request(request: Mapping) -> dict:
    """Check a request before anything is read; a top-level object with an integer ``label`` moves under ``objects``.

    After this, a top-level ``label`` is always the ground-truth image of simulation mode. A request is one of:
    clicks (top-level ``points``/``points_world`` with ``point_labels``, or ``objects``), simulation (``label``: a
    label image, optional ``classes`` and ``num_clicks``) or automatic (``label_prompt``).

    Args:
        request: the request dict (``input_dict``), before ``LoadImaged``.

    Returns:
        The request, with a top-level object moved under ``objects`` when it has an integer ``label``.

    Raises:
        ValueError: for an image that is not a path, or a request mixing modes in a way that would be ambiguous.
    """
    request = dict(request)
    top_level_clicks = any(k in request for k in ("points", "points_world", "box", "box_world"))
    if top_level_clicks and "objects" in request:
        raise ValueError("give either top-level 'points' for one object or 'objects' for several, not both.")
    if not _is_path(request.get("image")):
        raise ValueError(
            f"'image' must be the path of an image file or of a DICOM series folder, got {request.get('image')!r}."
        )
    if "label" not in request:
        return request
    label = request["label"]
    if isinstance(label, int) and not isinstance(label, bool) and top_level_clicks:
        spec = {k: request.pop(k) for k in (*CLICK_KEYS, "label") if k in request}
        request["objects"] = {"object": spec}
        return request
    if not _is_path(label):
        raise ValueError(
            f"'label' is {label!r}: at the top level it is the ground-truth label image of simulation mode (a path), "
            "or, next to top-level 'points', the output value of that object."
        )
    if top_level_clicks or "objects" in request or "label_prompt" in request:
        raise ValueError(
            "the request has both a ground-truth 'label' image (simulation mode, clicks drawn from it) and prompts "
            "('points', 'objects' or 'label_prompt'): give one of them."
        )
    return request


def parse_request_prompts(request: Mapping, spatial_shape: Sequence[int], affine) -> list[ObjectPrompt]:
    """Validate the clicks of a request against its image.

    A request holds either one object's prompts at the top level (``points`` or ``points_world``, with
    ``point_labels``, and/or a ``box`` or ``box_world``) or several named objects under ``objects``
    (``{name: {[box,] points, point_labels[, label]}}``); an object's ``label`` is its value in the output label map
    (default: 1, 2, ... in order). A ``box`` is two opposite corners in voxel indices of the image as stored,
    inclusive, lowest first; ``box_world`` two opposite corners in RAS mm; the box comes before the clicks.

    Args:
        request: the request dict (``input_dict``).
        spatial_shape: ``(I, J, K)`` of the original image.
        affine: its 4x4 voxel-to-RAS affine (used for ``points_world``).

    Returns:
        One :class:`ObjectPrompt` per object.
    """
    affine = as_affine(affine)
    objects = request.get("objects")
    top_level = any(k in request for k in ("points", "points_world", "box", "box_world"))
    if objects is not None and top_level:
        raise ValueError("give either top-level 'points' for one object or 'objects' for several, not both.")
    if objects is None:
        if not top_level:
            raise ValueError(
                "the request has no clicks: add 'points' (voxel indices [i, j, k] of the image) and 'point_labels' "
                "(1 positive, 0 negative), or a 'box', or 'objects' with one such set per object."
            )
        objects = {"object": request}
    if not isinstance(objects, Mapping) or not objects:
        raise ValueError("'objects' must map object names to their clicks, e.g. {'liver': {'points': ..., ...}}.")
    prompts = [
        _object_prompt(str(name), int(spec.get("label", index + 1)), spec, spatial_shape, affine)
        for index, (name, spec) in enumerate(objects.items())
    ]
    labels = [p.label for p in prompts]
    if len(set(labels)) != len(labels) or min(labels) < 1 or max(labels) > 255:
        raise ValueError(f"object labels must be distinct integers in 1..255, got {labels}.")
    return prompts
