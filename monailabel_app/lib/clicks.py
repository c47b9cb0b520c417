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
"""Viewer clicks: parsing the two point lists a viewer sends, and what changed since the last answer."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Click", "ClickChange", "diff_clicks", "parse_clicks", "continued_history"]

# A click: voxel indices (i, j, k) of the image as the server stores it, and 1 (foreground) or 0 (background).
Click = tuple[tuple[int, int, int], int]


def _points(value: object, name: str, shape: Sequence[int]) -> list[tuple[int, int, int]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError(f"'{name}' must be a list of [i, j, k] voxel indices, got {value!r}.")
    points = []
    for point in value:
        if (
            not isinstance(point, list)
            or len(point) != 3
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in point)
        ):
            raise ValueError(f"'{name}': each point must be three integers [i, j, k], got {point!r}.")
        if not all(0 <= v < n for v, n in zip(point, shape)):
            raise ValueError(
                f"'{name}': the point {point} is outside the image (voxel indices 0..{shape[0] - 1}, "
                f"0..{shape[1] - 1}, 0..{shape[2] - 1})."
            )
        points.append((point[0], point[1], point[2]))
    return points


def parse_clicks(request: dict, shape: Sequence[int]) -> list[Click]:
    """The clicks of a request: its ``foreground`` points, then its ``background`` points.

    Args:
        request: the infer request (``foreground``/``background``: lists of ``[i, j, k]``).
        shape: the image's spatial shape, for the range check.

    Raises:
        ValueError: a list or a point that is malformed or outside the image (the message names it).
    """
    foreground = _points(request.get("foreground"), "foreground", shape)
    background = _points(request.get("background"), "background", shape)
    return [(p, 1) for p in foreground] + [(p, 0) for p in background]


@dataclass(frozen=True)
class ClickChange:
    """How a request's clicks relate to the clicks of the last answer on the same image and label.

    Args:
        kind: ``"unchanged"``, ``"added"`` (the old clicks plus new ones), ``"removed"`` (the old clicks less
            some), ``"reset"`` (no click left) or ``"changed"`` (some removed, some added).
        clicks: the object's clicks in the order they were made (what a fresh session is given).
        added: the new clicks, in the request's order (foreground first).
        undo: for ``"removed"``, how many last clicks to undo when only the latest ones went (else 0: replay).
    """

    kind: str
    clicks: list[Click]
    added: list[Click]
    undo: int = 0


def diff_clicks(old: Sequence[Click], new: Sequence[Click]) -> ClickChange:
    """What changed from the clicks ``old`` (in the order made) to the unordered clicks ``new`` of a request.

    Viewers (3D Slicer) resend every current point as two unordered lists, so only the multiset of clicks is
    compared. Removed clicks go from the latest occurrence; added clicks come last, in the request's order.

    Args:
        old: the clicks of the last answer, in the order they were made.
        new: the request's clicks (see :func:`parse_clicks`).
    """
    old_count, new_count = Counter(old), Counter(new)
    removed, added = old_count - new_count, new_count - old_count
    if not new:
        return ClickChange("reset", [], [])
    kept: list[Click] = []
    to_remove = Counter(removed)
    for click in reversed(old):  # drop the latest occurrences of removed clicks
        if to_remove[click]:
            to_remove[click] -= 1
        else:
            kept.append(click)
    kept.reverse()
    new_clicks = []
    to_add = Counter(added)
    for click in new:
        if to_add[click]:
            to_add[click] -= 1
            new_clicks.append(click)
    if not removed and not added:
        return ClickChange("unchanged", list(old), [])
    if not removed:
        return ClickChange("added", kept + new_clicks, new_clicks)
    if not added:
        latest = sum(removed.values())
        undo = latest if Counter(old[len(old) - latest :]) == removed else 0
        return ClickChange("removed", kept, [], undo)
    return ClickChange("changed", kept + new_clicks, new_clicks)


# How well a request continues a history of clicks: unchanged, then clicks added, then the latest ones undone.
_CONTINUATION_RANK = {"unchanged": 3, "added": 2, "removed": 1}


def continued_history(histories: Sequence[Sequence[Click]], new: Sequence[Click]) -> int | None:
    """Which of several click histories (oldest first) a request's clicks continue, or ``None`` (none of them: a
    fresh object replays the request's clicks).

    Viewers that send no client id (OHIF) look like one client from several browser tabs: each tab's request must
    continue that tab's own clicks, in the order it made them, not the other tab's. A history continues when the
    request holds the same clicks, adds to them, or drops its latest ones; the longest such history wins, then the most
    recent.

    Args:
        histories: click histories, each in the order the clicks were made, oldest history first.
        new: the request's clicks (see :func:`parse_clicks`).
    """
    best, best_rank = None, None
    for index, old in enumerate(histories):
        change = diff_clicks(old, new)
        if change.kind not in _CONTINUATION_RANK or (change.kind == "removed" and not change.undo):
            continue
        rank = (_CONTINUATION_RANK[change.kind], len(old), index)
        if best_rank is None or rank > best_rank:
            best, best_rank = index, rank
    return best
