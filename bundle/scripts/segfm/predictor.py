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
"""The SegFM predictor: every case of a folder through the one interactive path, one ``segs`` file per case.

Each challenge step is a new process with nothing cached, so each class's state is rebuilt from the case: its box,
its clicks in time order (``clicks_order``) and ``prev_pred``. Two rules (``segfm_predict.json``'s ``segfm_rule``):

* ``session`` (default): the box and every click replayed in order through an ``InteractiveSession``, so a negative
  click removes voxels; a class without a box starts at its first click (from ``prev_pred`` if that click is
  negative).
* ``upstream``: the CVPR 2025 SAM-Med3D baseline's rule. Its prompts are the box's centre, then the fg clicks, then
  the bg clicks, and only the last one counts: a bg last prompt keeps the class's ``prev_pred``; a fg one becomes a
  positive click jittered within +-10 voxels (seeded here), in one window centred on the click, with ``prev_pred``
  as the mask prompt; the class is ``prev_pred`` united with the new mask.

Classes are painted 1..K, a later class over an earlier one, as upstream does.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import torch

from ..errors import USER_ERRORS
from ..geometry import window_start
from ..inference.inferer import ClickWindowInferer
from ..inference.prepared import PreparedImage
from ..inference.session import InteractiveSession
from ..inference.track import ObjectTrack
from .case import SegfmCase, SegfmClass, case_image, read_case

__all__ = ["RULES", "SegfmPredictor", "predict_case"]

logger = logging.getLogger(__name__)

RULES = ("session", "upstream")
JITTER = 10  # upstream's cube around a click: +-10 voxels (square_size 20)


def _session_class(
    prepared: PreparedImage, inferer: ClickWindowInferer, prompts: SegfmClass, prev: np.ndarray | None
) -> np.ndarray | None:
    session = InteractiveSession.on_prepared(prepared, inferer)
    clicks = list(prompts.clicks)
    if prompts.box is not None:
        session.box(prompts.box[0], prompts.box[1])
    elif not clicks:
        return prev
    elif not clicks[0][1]:  # a class that starts negative subtracts from what it had
        session.reset(mask=prev if prev is not None else np.zeros(prepared.image.shape[1:], dtype=bool))
    for point, positive in clicks:
        try:
            session.click(point, positive=positive)
        except ValueError as e:  # e.g. beyond max_windows: the click is left out, and said so
            logger.warning(f"click {point.tolist()} ({'fg' if positive else 'bg'}) left out: {e}")
    return session.mask


def _upstream_class(
    prepared: PreparedImage, prompts: SegfmClass, prev: np.ndarray | None, rng: np.random.RandomState
) -> np.ndarray | None:
    shape = np.asarray(prepared.image.shape[1:])
    order = [] if prompts.box is None else [((prompts.box[0] + prompts.box[1]) / 2.0, True)]
    order += [c for c in prompts.clicks if c[1]] + [c for c in prompts.clicks if not c[1]]  # fg, then bg
    if not order or not order[-1][1]:
        return prev  # the class is not run again
    click = np.asarray(order[-1][0], dtype=np.float64)
    jittered = np.clip(click + rng.randint(-JITTER, JITTER + 1, size=3), 0, shape - 1)
    start = window_start(prepared.to_ras(click), prepared.roi_size)  # the window is centred on the click
    point = np.clip(prepared.to_ras(jittered), start, np.asarray(start) + np.asarray(prepared.roi_size) - 1)
    start_mask = None if prev is None else prepared.grid_mask(prev)
    track = ObjectTrack(prepared, max_windows=1, start_mask=start_mask, first_window=start)
    track.add_click(point, 1)
    mask = track.original_mask()
    return mask if prev is None else mask | prev


def predict_case(
    case: SegfmCase, network: torch.nn.Module, inferer: ClickWindowInferer, rule: str = "session", seed: int = 0
) -> np.ndarray:
    """The case's ``segs``: uint8 ``(D, H, W)``, class k from the k-th box or click set.

    Args:
        case: the case (:func:`read_case`).
        network: a ``SAMMed3D``.
        inferer: spacing, window size, ``max_windows``, ``box_margin_mm``, autocast.
        rule: ``"session"`` or ``"upstream"`` (see the module docstring).
        seed: seeds the ``upstream`` rule's jitter (with the case name, class and click count).
    """
    if rule not in RULES:
        raise ValueError(f"segfm_rule must be one of {', '.join(RULES)}, got {rule!r}.")
    prepared = inferer.prepare(case_image(case), network)
    segs = np.zeros(case.imgs.shape, dtype=np.uint8)
    for k, prompts in enumerate(case.classes, start=1):
        prev = None if case.prev_pred is None else case.prev_pred == k
        if rule == "session":
            mask = _session_class(prepared, inferer, prompts, prev)
        else:
            key = f"{seed}:{case.name}:{k}:{len(prompts.clicks)}".encode("utf-8")
            mask = _upstream_class(prepared, prompts, prev, np.random.RandomState(zlib.crc32(key)))
        if mask is not None:
            segs[mask] = k
    return segs


class SegfmPredictor:
    """Runs every ``*.npz`` of a folder (the challenge's ``predict.sh`` contract) and writes ``<name>.npz`` with
    ``segs`` beside the others; a bad case gets one ``error:`` line naming it, the others are still written, and
    :meth:`exit` ends the process with status 1.

    Args:
        network: a ``SAMMed3D`` with its weights, loaded once per process.
        inferer: the ``ClickWindowInferer`` of the one path.
        rule: ``"session"`` (default) or ``"upstream"``.
        seed: seeds the ``upstream`` rule's jitter.
    """

    def __init__(
        self, network: torch.nn.Module, inferer: ClickWindowInferer, rule: str = "session", seed: int = 0
    ) -> None:
        if rule not in RULES:
            raise ValueError(f"segfm_rule must be one of {', '.join(RULES)}, got {rule!r}.")
        self.network, self.inferer, self.rule, self.seed = network, inferer, rule, int(seed)
        self.failed: list[str] = []

    def run(self, input_dir: str | os.PathLike, output_dir: str | os.PathLike) -> list[str]:
        """Predict every case of ``input_dir`` into ``output_dir``; returns the names of the cases that failed.

        Args:
            input_dir: the folder of case ``.npz`` files.
            output_dir: where ``<name>.npz`` (``segs``) is written, atomically.
        """
        files = sorted(Path(input_dir).glob("*.npz"))
        if not files:
            raise FileNotFoundError(f"no *.npz case in {input_dir}: give --input_dir the folder of the cases.")
        out = Path(output_dir)
        out.mkdir(parents=True, exist_ok=True)
        for path in files:
            start = time.perf_counter()
            name = path.name[: -len(".npz")]
            try:
                case = read_case(path)
                segs = predict_case(case, self.network, self.inferer, self.rule, self.seed)
            except USER_ERRORS as e:
                message = str(e) if str(e).startswith("case ") else f"case {name}: {e}"
                print(f"error: {message.splitlines()[0]}", file=sys.stderr, flush=True)
                self.failed.append(name)
                continue
            except Exception:  # a bug must not cost the other cases their outputs
                logger.exception(f"case {name} failed")
                print(f"error: case {name}: failed (see the log)", file=sys.stderr, flush=True)
                self.failed.append(name)
                continue
            partial = out / f".{name}.partial-{os.getpid()}"
            with open(partial, "wb") as f:
                np.savez_compressed(f, segs=segs)
            os.replace(partial, out / f"{name}.npz")
            logger.info(
                f"case {name}: {len(case.classes)} class(es), rule {self.rule}, {time.perf_counter() - start:.2f} s"
            )
        return self.failed

    def exit(self) -> None:
        """End the process with status 1 when a case failed."""
        if self.failed:
            raise SystemExit(1)
