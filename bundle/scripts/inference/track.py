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
"""The one interactive path: one object on a prepared image, fed prompts one at a time.

Segment-anything's predictor is its one interactive path; here :class:`ObjectTrack` plays that role. Every front end
that segments an object with prompts (the command line, the session, click simulation and N-click evaluation,
automatic mode's refinement, viewers) feeds a track, so the same prompts in the same order give the same mask.

The rules, applied after each prompt:

* **Window placement.** The first prompt opens the object's first window, centred on it (or at a start given by the
  caller, e.g. the label's box in simulation). A later click outside every window of the object opens a window
  centred on it; a negative click there changes nothing unless the object started from a mask.
* **Decoding.** A click re-decodes every window of the object that contains it, once: the window's prompts so far
  (a tracking window's seed click first, then the user's clicks inside it, in their order) and its previous
  low-resolution logits, as the reference replays clicks. A window's first decode gets the starting mask prompt
  (the object's starting mask cut to the window, nearest-downsampled, as upstream's CVPR 2025 baseline feeds its
  previous mask), or none.
* **Tracking.** The object's *followed part* is, window by window in opening order, the 26-connected components of
  the window's mask that hold a positive prompt, a voxel of the starting mask or a voxel already followed. While
  that part reaches a face of its window behind which the image goes on, a window shifted by half its size across
  the face is opened (up to ``max_windows`` in all), seeded with the deepest followed voxel inside it (a
  positive click) and the user's clicks that fall in it.
* **The mask.** The starting mask outside every window, the whole mask of the windows opened on a prompt (as the
  reference returns its window) and the followed part of the tracking windows. So a stray blob at a window's edge
  neither opens windows nor grows there.
* **Boxes.** A box starts an object (before any click) and opens its first window centred on the box. Networks with
  box embeddings (the CVPR 2025 checkpoints) get the box's two corners with every decode, cut to the window. Networks
  without (the released turbo) get a positive click at the box's centre, as upstream's CVPR 2025 baseline does, and
  the object's mask is clipped to the box grown by ``box_margin_mm``. Either way the voxels inside the box seed the
  followed part, and tracking opens only windows that meet the (grown) box, so a box larger than a window is covered
  by tracking windows.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy.ndimage import label as connected_components

from ..geometry import window_start
from ..geometry.depth import deepest_voxel
from ..geometry.window import add_to_grid, bounding_box, window_points, window_slices
from .prepared import GridMask, PreparedImage, Window

__all__ = ["Box", "Click", "TrackedWindow", "ObjectTrack", "box_on_grid"]

logger = logging.getLogger(__name__)

_CONNECTIVITY = np.ones((3, 3, 3), dtype=bool)


@dataclass(frozen=True)
class Click:
    """A click in continuous RAS-grid coordinates; label 1 adds the voxel to the object, 0 removes it."""

    point: np.ndarray
    label: int


@dataclass(frozen=True)
class Box:
    """A box on the RAS grid: its corner voxels' centres (``lo``, ``hi``) and its edges (``edge_lo``, ``edge_hi``),
    in continuous RAS-grid coordinates, ``lo <= hi`` per axis."""

    lo: np.ndarray
    hi: np.ndarray
    edge_lo: np.ndarray
    edge_hi: np.ndarray

    @property
    def centre(self) -> np.ndarray:
        """The box's centre, where the released turbo gets its click."""
        return (self.lo + self.hi) / 2.0


def box_on_grid(prepared: PreparedImage, lo: Sequence[float], hi: Sequence[float]) -> Box:
    """The RAS-grid :class:`Box` of a box given by its corner voxels on the original grid (inclusive).

    Args:
        prepared: the image.
        lo: the lowest corner voxel ``(i, j, k)`` of the original image.
        hi: the highest corner voxel (``lo <= hi`` per axis).
    """
    lo_, hi_ = np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)
    corners = prepared.to_ras(np.stack([lo_, hi_]))
    edges = prepared.to_ras(np.stack([lo_ - 0.5, hi_ + 0.5]))  # the RAS grid is the original up to scale/permute/flip
    return Box(corners.min(axis=0), corners.max(axis=0), edges.min(axis=0), edges.max(axis=0))


@dataclass
class TrackedWindow:
    """One window of an object after its last decode.

    Args:
        window: the encoded window.
        on_prompt: opened on a user prompt (its whole mask counts) rather than by tracking (its followed part).
        seed: RAS-grid voxel of the positive click that tracking put into it, or ``None``.
        low_res: the decoder's low-resolution logits ``(1, 1, 32, 32, 32)``.
        iou: the decoder's predicted IoU of the window's mask.
        mask: the window's binary mask (bool, ``roi_size``), or ``None`` once the window was decoded again: the undo
            history keeps the logits (128 KB), not the 2 MB mask, which the track remakes when it is needed again.
    """

    window: Window
    on_prompt: bool
    seed: tuple[int, int, int] | None
    low_res: torch.Tensor
    iou: float
    mask: np.ndarray | None

    @property
    def start(self) -> tuple[int, int, int]:
        """First RAS-grid voxel of the window."""
        return self.window.start


class ObjectTrack:
    """One object on a :class:`PreparedImage`: prompts in, its mask on the RAS grid and the original grid out.

    Args:
        prepared: the image, prepared once (its window cache is shared by all tracks on it).
        max_windows: windows the object may use (1: the reference's single window, no tracking).
        class_id: a class prompt passed with every decode (networks with class prompts), or ``None``.
        start_mask: the mask the object starts from (:meth:`PreparedImage.grid_mask` of a mask on the image's grid),
            or ``None``.
        first_window: start of the first window, instead of centring it on the first prompt.
        mask_prompt: the first mask prompt of a window, ``window -> (1, 1, 32, 32, 32)`` logits or ``None``
            (default: from ``start_mask``).
        box_margin_mm: a box given to a network without box embeddings clips the mask to the box grown by this.
    """

    def __init__(
        self,
        prepared: PreparedImage,
        max_windows: int = 8,
        class_id: int | None = None,
        start_mask: GridMask | None = None,
        first_window: Sequence[int] | None = None,
        mask_prompt: Callable[[Window], torch.Tensor | None] | None = None,
        box_margin_mm: float = 10.0,
    ) -> None:
        if max_windows < 1:
            raise ValueError(f"max_windows must be at least 1, got {max_windows}.")
        if start_mask is not None and start_mask.prepared is not prepared:
            raise ValueError("start_mask belongs to another image: make it with this image's grid_mask().")
        self.prepared = prepared
        self.max_windows = int(max_windows)
        self.class_id = class_id
        self.start_mask = start_mask
        self.first_window = None if first_window is None else tuple(int(s) for s in first_window)
        self._mask_prompt = mask_prompt or self._start_mask_prompt
        self._has_start = start_mask is not None or mask_prompt is not None  # something a negative click can remove
        if box_margin_mm < 0:
            raise ValueError(f"box_margin_mm must be >= 0, got {box_margin_mm}.")
        self.box_margin_mm = float(box_margin_mm)
        self.box: Box | None = None
        self._box_bounds: dict[float, tuple[np.ndarray, np.ndarray]] = {}  # margin -> self.box's voxels, [lo, hi)
        self.clicks: list[Click] = []
        self.windows: list[TrackedWindow] = []
        self._history: list[tuple[int, tuple[TrackedWindow, ...], Box | None]] = []
        self._parts: list[np.ndarray] = []  # followed part per window, valid for a prefix of self.windows
        self._mask: tuple[np.ndarray, np.ndarray] | None = None  # the assembled object: (lo, its region from lo)
        self._original: tuple[tuple[slice, ...], np.ndarray] | None = None  # and on the original grid

    # --- prompts ---------------------------------------------------------------------------------------------------

    def add_click(self, point: Sequence[float] | np.ndarray, label: int) -> None:
        """Add a click and update the object (decodes, tracking).

        Args:
            point: continuous RAS-grid coordinates (``PreparedImage.to_ras`` of original voxel indices).
            label: 1 positive, 0 negative.

        Raises:
            ValueError: a first click that is negative on an object without a starting mask, a label other than 0/1,
                or a click that needs a new window beyond ``max_windows``. The track is then unchanged.
        """
        label = int(label)
        if label not in (0, 1):
            raise ValueError(f"a click's label is 1 (positive) or 0 (negative), got {label}.")
        if not self.windows and label == 0 and not self._has_start:
            raise ValueError(
                "the first click on an object must be positive: a negative click has nothing to remove yet "
                "(start the object from a mask to subtract from it)."
            )
        click = Click(np.asarray(point, dtype=np.float64).reshape(3), label)
        self._history.append((len(self.clicks), tuple(self.windows), self.box))
        self.clicks.append(click)
        try:
            self._place(click)
            self._follow()
        except Exception:
            self._restore(self._history.pop())
            raise

    def add_box(self, box: Box) -> None:
        """Start the object from a box (see the module's rules): its first window, centred on the box, is decoded.

        Args:
            box: the box on the RAS grid (:func:`box_on_grid`).

        Raises:
            ValueError: the object already has a prompt (a box starts an object), or the box is inverted. The track is
                then unchanged.
        """
        if self.box is not None or self.clicks:
            raise ValueError("a box starts an object: give it before any click (reset the session for a new object).")
        if (np.asarray(box.lo) > np.asarray(box.hi)).any():
            raise ValueError(f"the box's low corner {box.lo.tolist()} lies above its high corner {box.hi.tolist()}.")
        self._history.append((0, tuple(self.windows), None))
        self.box, self._box_bounds = box, {}
        try:
            if self.embeds_boxes:
                logger.info("box: embedded as its two corners (the checkpoint has box embeddings)")
            else:
                logger.info(
                    "box: a positive click at its centre (the checkpoint has no box embeddings), mask clipped to the "
                    f"box grown by {self.box_margin_mm:g} mm"
                )
            start = window_start(box.centre, self.prepared.roi_size)
            self.windows.append(self._decode(self.prepared.window(start), True, None))
            self._invalidate(0)
            self._follow()
        except Exception:
            self._restore(self._history.pop())
            raise

    @property
    def embeds_boxes(self) -> bool:
        """Whether the network embeds boxes (four point embeddings) rather than taking a click at their centre."""
        return bool(getattr(self.prepared.network, "box_embeddings", False))

    def undo(self) -> bool:
        """Remove the last prompt; ``False`` when there is none. The windows stay encoded."""
        if not self._history:
            return False
        self._restore(self._history.pop())
        return True

    # --- results ---------------------------------------------------------------------------------------------------

    @property
    def num_prompts(self) -> int:
        """Prompts given so far (a box counts as one)."""
        return len(self.clicks) + (self.box is not None)

    def ras_region(self) -> tuple[np.ndarray, np.ndarray]:
        """The object's mask on the RAS grid as ``(lo, region)``: the mask on the box ``[lo, lo + region.shape)``,
        empty outside it (bool, read-only)."""
        if self._mask is None:
            lo, region = self._assemble()
            region.flags.writeable = False
            self._mask = (lo, region)
        return self._mask

    def original_region(self) -> tuple[tuple[slice, ...], np.ndarray]:
        """The object on the original image grid as a box of it and the mask there (bool): the mask is empty outside
        the box (the reference's paste-back, of the object's own box: its cost follows the object, not the image)."""
        if self._original is None:
            lo, region = self.ras_region()
            found = bounding_box(region)
            if found is None:
                self._original = (slice(0, 0),) * 3, np.zeros((0, 0, 0), dtype=bool)
            else:
                a, b = found
                self._original = self.prepared.paste(region[a[0] : b[0], a[1] : b[1], a[2] : b[2]], lo + a)
                self._original[1].flags.writeable = False
        return self._original

    def original_mask(self) -> np.ndarray:
        """The object's mask on the original image grid, bool ``(I, J, K)``."""
        box, block = self.original_region()
        mask = np.zeros(self.prepared.image.shape[1:], dtype=bool)  # calloc: only the box's pages are written
        mask[box] = block
        return mask

    @property
    def iou(self) -> float:
        """The decoder's predicted IoU of the object: its windows' predictions weighted by their voxels (NaN before
        the first decode)."""
        if not self.windows:
            return float("nan")
        weights = [float(self._region(i).sum()) for i in range(len(self.windows))]
        if sum(weights) == 0:
            return self.windows[0].iou
        return float(np.average([w.iou for w in self.windows], weights=weights))

    # --- the rules -------------------------------------------------------------------------------------------------

    def _place(self, click: Click) -> None:
        roi = self.prepared.roi_size
        touched = [i for i, w in enumerate(self.windows) if window_points(click.point, w.start, roi)[1][0]]
        for i in touched:
            previous = self.windows[i]
            self.windows[i] = self._decode(previous.window, previous.on_prompt, previous)
            previous.mask = None  # only the undo history holds it now: its logits are enough to remake it
        if touched:
            self._invalidate(min(touched))
            return
        if click.label == 0 and not self._has_start:
            return  # the object has no voxel outside its windows: nothing to remove there
        if len(self.windows) >= self.max_windows:
            raise ValueError(
                f"the click lies outside the object's {len(self.windows)} window(s) of {roi} voxels and max_windows "
                f"is {self.max_windows}: click nearer the object, raise max_windows, or segment it as another object."
            )
        if not self.windows and self.first_window is not None:
            start = self.first_window
            if not window_points(click.point, start, roi)[1][0]:
                raise ValueError(f"the first click lies outside the object's first window at {start}.")
        else:
            start = window_start(click.point, roi)
        self.windows.append(self._decode(self.prepared.window(start), True, None))
        self._invalidate(len(self.windows) - 1)

    def _decode(self, window: Window, on_prompt: bool, previous: TrackedWindow | None, seed=None) -> TrackedWindow:
        """Decode a window with its prompts so far and its previous logits (or its first mask prompt)."""
        seed = previous.seed if previous is not None else seed
        points, labels = self._window_prompts(window.start, seed)
        low_res = previous.low_res if previous is not None else self._mask_prompt(window)
        box = None
        if self.box is not None and self.embeds_boxes:  # the box as this window sees it
            last = np.asarray(self.prepared.roi_size, dtype=np.float64) - 1
            start = np.asarray(window.start, dtype=np.float64)
            box = np.concatenate([np.clip(self.box.lo - start, 0, last), np.clip(self.box.hi - start, 0, last)])
        low_res, iou = self.prepared.decode(window, points, labels, low_res, self.class_id, box=box)
        return TrackedWindow(window, on_prompt, seed, low_res, iou, self.prepared.mask(low_res))

    def _window_prompts(self, start: Sequence[int], seed: tuple[int, int, int] | None) -> tuple[np.ndarray, np.ndarray]:
        """ROI points and labels of a window: the tracking seed first, then (networks without box embeddings) the
        box's centre, then the user's clicks inside, in order."""
        points = [click.point for click in self.clicks]
        labels = [click.label for click in self.clicks]
        if self.box is not None and not self.embeds_boxes:
            points, labels = [self.box.centre, *points], [1, *labels]
        if seed is not None:
            points, labels = [np.asarray(seed, dtype=np.float64), *points], [1, *labels]
        if not points:
            return np.zeros((0, 3), dtype=np.int64), np.zeros(0, dtype=np.int64)
        roi, inside = window_points(np.stack(points), start, self.prepared.roi_size)
        return roi[inside], np.asarray(labels, dtype=np.int64)[inside]

    def _start_mask_prompt(self, window: Window) -> torch.Tensor | None:
        if self.start_mask is None:
            return None
        part = torch.from_numpy(self.start_mask.window(window.start)).float()[None, None]
        return F.interpolate(part, size=self.prepared.network.mask_input_size, mode="nearest")

    def _follow(self) -> None:
        """Open tracking windows while the followed part reaches a window face (one window at a time)."""
        if self.max_windows == 1:
            return
        roi, grid = self.prepared.roi_size, self.prepared.grid_shape
        tried: set[tuple[int, int, int]] = set()
        while len(self.windows) < self.max_windows:
            opened = {w.start for w in self.windows}
            found = None
            for i, tracked in enumerate(self.windows):
                for axis, side in _touched_faces(self._mask_of(tracked), tracked.start, grid):
                    start = list(tracked.start)
                    start[axis] += side * roi[axis] // 2
                    start = tuple(start)
                    if start in opened or start in tried or not _reaches(self._part(i), axis, side):
                        continue
                    if self.box is not None and not self._meets_box(start):
                        continue
                    tried.add(start)
                    seed = self._deepest_followed(start)
                    if seed is not None:
                        found = (start, seed)
                        break
                if found:
                    break
            if found is None:
                return
            start, seed = found
            self.windows.append(self._decode(self.prepared.window(start), False, None, seed=seed))
            self._invalidate(len(self.windows) - 1)

    def _part(self, i: int) -> np.ndarray:
        """The followed part of window ``i`` (computed for every earlier window first)."""
        while len(self._parts) <= i:
            j = len(self._parts)
            tracked = self.windows[j]
            seeds = self._followed_in(tracked.start, upto=j) | self._prompt_voxels(tracked)
            if self.start_mask is not None:
                seeds |= self.start_mask.window(tracked.start)
            if self.box is not None:
                seeds |= self._box_part(0.0, tracked.start, self.prepared.roi_size)
            self._parts.append(_connected_part(self._mask_of(tracked), seeds))
        return self._parts[i]

    def _box_voxels(self, margin_mm: float) -> tuple[np.ndarray, np.ndarray]:
        """The RAS-grid voxels whose centres lie in the box grown by ``margin_mm``: ``[lo, hi)`` (cached per box)."""
        if margin_mm not in self._box_bounds:
            spacing = np.linalg.norm(self.prepared.grid.affine[:3, :3], axis=0)
            lo = np.ceil(self.box.edge_lo - margin_mm / spacing - 1e-6).astype(int)
            hi = np.floor(self.box.edge_hi + margin_mm / spacing + 1e-6).astype(int) + 1
            lo, hi = np.maximum(lo, 0), np.minimum(hi, self.prepared.grid_shape)
            self._box_bounds[margin_mm] = (lo, np.maximum(hi, lo))
        return self._box_bounds[margin_mm]

    def _box_part(self, margin_mm: float, start: Sequence[int], size: Sequence[int]) -> np.ndarray:
        """The grown box's voxels in the box ``[start, start + size)`` of the RAS grid (bool, that box's grid)."""
        lo, hi = self._box_voxels(margin_mm)
        out = np.zeros(tuple(int(s) for s in size), dtype=bool)
        a, b = np.maximum(lo - np.asarray(start), 0), np.minimum(hi - np.asarray(start), out.shape)
        if (b > a).all():
            out[a[0] : b[0], a[1] : b[1], a[2] : b[2]] = True
        return out

    def _meets_box(self, start: Sequence[int]) -> bool:
        """Whether the window at ``start`` holds a voxel of the box grown by the margin."""
        lo, hi = self._box_voxels(self.box_margin_mm)
        end = np.asarray(start) + np.asarray(self.prepared.roi_size)
        return bool((hi > lo).all() and (np.maximum(lo, start) < np.minimum(hi, end)).all())

    def _mask_of(self, tracked: TrackedWindow) -> np.ndarray:
        """A window's binary mask, remade from its logits if an undo brought it back."""
        if tracked.mask is None:
            tracked.mask = self.prepared.mask(tracked.low_res)
        return tracked.mask

    def _region(self, i: int) -> np.ndarray:
        """What window ``i`` adds to the object's mask."""
        return self._mask_of(self.windows[i]) if self.windows[i].on_prompt else self._part(i)

    def window_mask(self, start: Sequence[int]) -> np.ndarray:
        """The object's mask as the window at ``start`` sees it (bool, window grid): what each of the object's
        windows adds, where they overlap it, the zero padding beyond the image included (the reference's window
        mask, for a single window)."""
        return self._gather(start, self._region, len(self.windows))

    def _followed_in(self, start: Sequence[int], upto: int) -> np.ndarray:
        """The followed parts of windows ``< upto`` inside the window at ``start`` (bool, window grid)."""
        return self._gather(start, self._part, upto)

    def _gather(self, start: Sequence[int], region: Callable[[int], np.ndarray], upto: int) -> np.ndarray:
        roi = self.prepared.roi_size
        out = np.zeros(roi, dtype=bool)
        for j in range(upto):
            shift = [o - s for o, s in zip(self.windows[j].start, start)]
            dst, src = window_slices(shift, roi, roi)  # the overlap of window j, in this window and in window j
            out[dst] |= region(j)[src]
        return out

    def _prompt_voxels(self, tracked: TrackedWindow) -> np.ndarray:
        """The window's positive prompts as voxels of the window grid."""
        out = np.zeros(self.prepared.roi_size, dtype=bool)
        points, labels = self._window_prompts(tracked.start, tracked.seed)
        positive = points[labels == 1]
        if len(positive):
            out[tuple(positive.T)] = True
        return out

    def _deepest_followed(self, start: tuple[int, int, int]) -> tuple[int, int, int] | None:
        """The followed voxel deepest inside the window at ``start`` (RAS grid), or ``None`` if none is there."""
        voxel = deepest_voxel(self._followed_in(start, upto=len(self.windows)))
        if voxel is None:
            return None
        return tuple(int(v + s) for v, s in zip(voxel, start))  # type: ignore[return-value]

    def _assemble(self) -> tuple[np.ndarray, np.ndarray]:
        """The object on the box of the RAS grid that holds it (:meth:`_extent`): ``(lo, region)``."""
        lo, hi = self._extent()
        if self.start_mask is None:
            region = np.zeros(hi - lo, dtype=bool)
        else:
            region = self.start_mask.box(lo, hi).copy()
            for tracked in self.windows:  # inside its windows, the object is what the network says
                region[window_slices(np.asarray(tracked.start) - lo, self.prepared.roi_size, region.shape)[0]] = False
        for i, tracked in enumerate(self.windows):
            add_to_grid(region, self._region(i), np.asarray(tracked.start) - lo)
        if self.box is not None and not self.embeds_boxes:  # the click at the box's centre says less than the box
            region &= self._box_part(self.box_margin_mm, lo, region.shape)
        return lo, region

    def _extent(self) -> tuple[np.ndarray, np.ndarray]:
        """The box ``[lo, hi)`` of the RAS grid outside which the object's mask is empty: its windows and the starting
        mask's bounds, on the grid."""
        grid = np.asarray(self.prepared.grid_shape)
        roi = np.asarray(self.prepared.roi_size)
        boxes = [(np.asarray(w.start), np.asarray(w.start) + roi) for w in self.windows]
        if self.start_mask is not None and (self.start_mask.bounds[1] > self.start_mask.bounds[0]).all():
            boxes.append(self.start_mask.bounds)
        if not boxes:
            return np.zeros(3, dtype=int), np.zeros(3, dtype=int)
        lo = np.maximum(np.min([b[0] for b in boxes], axis=0), 0)
        hi = np.minimum(np.max([b[1] for b in boxes], axis=0), grid)
        return lo, np.maximum(hi, lo)

    def _invalidate(self, i: int) -> None:
        del self._parts[i:]
        self._mask = self._original = None

    def _restore(self, state: tuple[int, tuple[TrackedWindow, ...], Box | None]) -> None:
        num_clicks, windows, box = state
        if box is not self.box:
            self.box, self._box_bounds = box, {}
        del self.clicks[num_clicks:]
        self.windows = list(windows)
        self._parts = []
        self._mask = self._original = None


def _touched_faces(mask: np.ndarray, start: Sequence[int], grid_shape: Sequence[int]) -> list[tuple[int, int]]:
    """``(axis, +1/-1)`` for every face of the window that ``mask`` reaches and behind which the grid goes on."""
    faces = []
    for axis in range(3):
        size = mask.shape[axis]
        if start[axis] > 0 and np.take(mask, 0, axis=axis).any():
            faces.append((axis, -1))
        if start[axis] + size < grid_shape[axis] and np.take(mask, size - 1, axis=axis).any():
            faces.append((axis, 1))
    return faces


def _reaches(part: np.ndarray, axis: int, side: int) -> bool:
    """Whether a window-grid mask has a voxel on the face ``(axis, side)``."""
    return bool(np.take(part, 0 if side < 0 else part.shape[axis] - 1, axis=axis).any())


def _connected_part(mask: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """The 26-connected components of ``mask`` that hold a voxel of ``seeds`` (both bool, window grid)."""
    held = mask & seeds
    if not held.any():
        return np.zeros_like(mask)
    found = bounding_box(mask)  # components do not leave the mask's box: label only that
    a, b = found
    box = (slice(a[0], b[0]), slice(a[1], b[1]), slice(a[2], b[2]))
    components, _ = connected_components(mask[box], structure=_CONNECTIVITY)
    kept = np.unique(components[held[box]])
    out = np.zeros_like(mask)
    out[box] = np.isin(components, kept[kept > 0])
    return out
