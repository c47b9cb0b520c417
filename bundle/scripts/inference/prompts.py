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
"""Click prompts of an inference request: parsing, validation in the original voxel space, world coordinates."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..geometry import as_affine

__all__ = ["ObjectPrompt", "normalise_request", "parse_request_prompts", "voxel_points"]

CLICK_KEYS = ("points", "points_world", "point_labels")


@dataclass
class ObjectPrompt:
    """The clicks on one object, in voxel indices ``(i, j, k)`` of the original image (file voxel order).

    Args:
        name: object name (the key in ``objects``, or ``"object"``).
        label: value of the object in the output label map.
        points: ``(N, 3)`` float64 voxel indices.
        point_labels: ``(N,)`` int64, 1 positive, 0 negative; clicks are replayed in this order.
    """

    name: str
    label: int
    points: np.ndarray
    point_labels: np.ndarray


def _object_prompt(name: str, label: int, spec: Mapping, shape: Sequence[int], affine: np.ndarray) -> ObjectPrompt:
    has_voxels, has_world = "points" in spec, "points_world" in spec
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
    if not (labels == 1).any():
        raise ValueError(f"object '{name}' has only negative clicks: give at least one positive click (label 1).")
    points = voxel_points(raw, shape, affine, world=has_world, what=f"object '{name}': click")
    return ObjectPrompt(name, label, points, labels.astype(np.int64))


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
    top_level_clicks = any(k in request for k in ("points", "points_world"))
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

    A request holds either one object's clicks at the top level (``points`` or ``points_world``, with
    ``point_labels``) or several named objects under ``objects`` (``{name: {points, point_labels[, label]}}``); an
    object's ``label`` is its value in the output label map (default: 1, 2, ... in order).

    Args:
        request: the request dict (``input_dict``).
        spatial_shape: ``(I, J, K)`` of the original image.
        affine: its 4x4 voxel-to-RAS affine (used for ``points_world``).

    Returns:
        One :class:`ObjectPrompt` per object.
    """
    affine = as_affine(affine)
    objects = request.get("objects")
    if objects is not None and ("points" in request or "points_world" in request):
        raise ValueError("give either top-level 'points' for one object or 'objects' for several, not both.")
    if objects is None:
        if "points" not in request and "points_world" not in request:
            raise ValueError(
                "the request has no clicks: add 'points' (voxel indices [i, j, k] of the image) and 'point_labels' "
                "(1 positive, 0 negative), or 'objects' with one such set per object."
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
