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
"""The click task: viewer clicks -> the bundle's interactive session per (client, image, label) -> a mask file."""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

import nibabel as nib
import numpy as np
import torch
from fastapi import HTTPException
from monai.transforms import LoadImage
from monailabel.interfaces.tasks.infer_v2 import InferTask, InferType

from scripts.errors import user_error
from scripts.inference import ClickWindowInferer, InteractiveSession, PreparedImage
from scripts.inference.image_input import as_image

from .answers import ANSWER_EXTENSIONS, write_answer
from .cache import PreparedCache
from .clicks import Click, ClickChange, continued_history, diff_clicks, parse_clicks

__all__ = ["SamMed3DInfer"]

logger = logging.getLogger(__name__)


# Click histories kept per client, image and label: OHIF's tabs share one (it sends no client id), each tab its own.
STATES_PER_OBJECT = 8
# Objects (client, image, label) whose state is kept: their windows' masks, undo histories and answers.
OBJECTS_KEPT = 64


@dataclass
class _State:
    """One client's object on one image and label: the session, its box (Slicer's ``roi``) and its clicks in the
    order they were made."""

    session: InteractiveSession
    clicks: list[Click] = field(default_factory=list)
    box: tuple[tuple[int, ...], tuple[int, ...]] | None = None


def _bad_request(message: str, status: int = 400) -> HTTPException:
    return HTTPException(status_code=status, detail=f"error: {message}")


def _one_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


class SamMed3DInfer(InferTask):
    """SAM-Med3D clicks for 3D Slicer and OHIF: a ``deepgrow`` model of dimension 3.

    A request carries ``foreground`` and ``background`` voxel indices of the image as the server stores it, and
    ``label``, and optionally Slicer's ``roi``, which is the object's box prompt (given to the session before the
    clicks; the mask is also clipped to it); the answer is the object's mask on the image's own grid (NIfTI, or NRRD with
    ``result_extension: ".nrrd"``) and, in its JSON, the decoder's predicted IoU. Recent click histories are kept per
    client, image and label: a request continues the one it extends (a click added, the latest removed; see
    ``clicks.continued_history``), else the clicks it keeps are replayed in the order they were made, so a further
    click is one decoder pass per window it touches, on windows encoded once per image.

    Args:
        network: the bundle's network (``scripts.load_network``).
        labels: the label names the viewers list.
        cache_images: the most prepared images kept.
        cache_mb: the most megabytes of prepared images kept (0: no bound).
        max_windows: windows per object, as ``inference.json``'s ``max_windows``.
        answers_dir: where the answer files are written (MONAI Label deletes each once it is sent).
        warm_up_dicom: load ITK's readers at start (a DICOMweb source's series are read with them).
        description: shown by the viewers.
    """

    def __init__(
        self,
        network: torch.nn.Module,
        labels: dict[str, int],
        cache_images: int = 8,
        cache_mb: float = 0.0,
        max_windows: int = 8,
        answers_dir: str = "answers",
        warm_up_dicom: bool = False,
        description: str = "SAM-Med3D: click-prompted 3-D segmentation of CT and MRI",
    ) -> None:
        super().__init__(type=InferType.DEEPGROW, labels=labels, dimension=3, description=description)
        self.network = network
        self.inferer = ClickWindowInferer(max_windows=max_windows)
        self.cache = PreparedCache(self._prepare, cache_images, cache_mb, on_evict=self._forget_image)
        # recent click histories per client, image and label (most recent last), the objects in the order last used
        self._states: OrderedDict[tuple[str, str, str], list[_State]] = OrderedDict()
        self._lock = threading.Lock()
        # answers are written in the app's folder, not in the system's temp folder: a client on the same machine saves
        # the file it receives under the same name in that folder, while MONAI Label deletes the server's copy after
        # sending it; and a temp folder of the server's own would stay behind (uvicorn ends on SIGTERM by re-raising it,
        # so no exit handler runs)
        self._results = answers_dir
        os.makedirs(answers_dir, exist_ok=True)
        self.warm_up(warm_up_dicom)

    def warm_up(self, warm_up_dicom: bool = False) -> None:
        """One click on a small synthetic image, read from a file and answered in both formats, at start-up: the
        first use of the readers, the writers and the network's kernels costs seconds that the first click would
        otherwise pay.

        Args:
            warm_up_dicom: also load ITK's readers (the series of a DICOMweb source are read with them).
        """
        started = time.perf_counter()
        rng = np.random.default_rng(0)
        image = nib.Nifti1Image(rng.normal(100.0, 20.0, (24, 24, 24)).astype(np.float32), np.diag([3.0, 3.0, 3.0, 1]))
        path = os.path.join(self._results, "warm_up.nii.gz")
        nib.save(image, path)
        if warm_up_dicom:  # ITK reads the series folders of a DICOMweb source; its modules load on first use
            LoadImage(image_only=True, reader="ITKReader")(path)
        session = InteractiveSession.on_prepared(self.inferer.prepare(as_image(path), self.network), self.inferer)
        session.click([12, 12, 12])
        box, block = session.mask_region
        for extension, compress in ((".nii.gz", True), (".nrrd", False)):
            os.remove(write_answer(box, block, image.shape, image.affine, extension, compress, self._results))
        os.remove(path)
        logger.info(f"warmed up in {time.perf_counter() - started:.1f} s (one click on a synthetic image)")

    def is_valid(self) -> bool:
        """Always valid: the network was loaded (strictly) when the app started."""
        return True

    def _prepare(self, path: str) -> PreparedImage:
        try:
            image = as_image(path)
        except Exception as e:  # an unreadable or non-image file
            raise _bad_request(f"cannot read the image {path}: {_one_line(e)}") from None
        try:
            return self.inferer.prepare(image, self.network)
        except ValueError as e:  # not a one-channel 3-D image
            raise _bad_request(f"{path}: {e}") from None

    def _forget_image(self, path: str) -> None:
        for key in [k for k in self._states if k[1] == path]:
            del self._states[key]

    def __call__(self, request: dict) -> tuple[str, dict]:
        """Answer one click request (see the class docstring); HTTP 400 with one ``error:`` line on bad input."""
        with self._lock:
            try:
                return self._infer(request)
            except HTTPException:
                raise
            except Exception as e:
                cause = user_error(e)
                if cause is None:
                    logger.exception("click request failed")
                    raise _bad_request(_one_line(e), status=500) from None
                raise _bad_request(_one_line(cause)) from None

    def _infer(self, request: dict) -> tuple[str, dict]:
        start = time.perf_counter()
        path = str(request["image"])
        extension = str(request.get("result_extension") or ".nii.gz")
        if extension not in ANSWER_EXTENSIONS:
            raise _bad_request(f"result_extension must be one of {', '.join(ANSWER_EXTENSIONS)}, got {extension!r}.")
        client = str(request.get("client_id") or "")
        label = str(request.get("label") or "object")  # OHIF's point prompts name no label
        prepared, fresh = self.cache.get(path)
        shape = tuple(int(s) for s in prepared.image.shape[1:])
        clicks = parse_clicks(request, shape)
        roi = _roi(request.get("roi"), shape)
        box = _roi_box(request.get("roi"), shape)
        key = (client, path, label)
        encoded_before = self.cache.encoder_calls
        recent = [s for s in self._states.get(key, []) if s.session.prepared is prepared and s.box == box]
        if request.get("reset_state"):
            recent = []
        found = continued_history([s.clicks for s in recent], clicks)
        if found is not None:  # the history this request goes on from
            state = recent[found]
        elif recent:  # none: the most recent one's clicks that remain are replayed in the order made
            state = recent[-1]
        else:  # a new object, or a new or moved roi (the clicks are replayed after it)
            state = _State(InteractiveSession.on_prepared(prepared, self.inferer), box=box)
            if box is not None:
                state.session.add_box(*box)
        change = diff_clicks(state.clicks, clicks)
        before, state = state, _apply(state, change, prepared, self.inferer)
        kept = [s for s in recent if s is not before or s.session is not state.session]  # the continued one moves up
        self._states[key] = (kept + [state])[-STATES_PER_OBJECT:]
        self._states.move_to_end(key)
        while len(self._states) > OBJECTS_KEPT:  # the objects no client came back to for longest go first
            self._states.popitem(last=False)
        prompted = bool(state.clicks) or state.box is not None
        region, mask = state.session.mask_region if prompted else ((slice(0, 0),) * 3, np.zeros((0, 0, 0), bool))
        if roi is not None:
            region, mask = _clipped(region, mask, roi)
        iou = state.session.iou if prompted else float("nan")
        compress = bool(request.get("result_compress", True))
        affine = prepared.image.affine.numpy()
        file_name = write_answer(region, mask, shape, affine, extension, compress, self._results)
        seconds = time.perf_counter() - start
        answer = {
            "label_names": {label: 1},
            "iou": None if math.isnan(iou) else round(iou, 6),
            "clicks": len(state.clicks),
            "change": change.kind,
            "voxels": int(mask.sum()),
            "windows": len(state.session.track.windows),
            "image_prepared": fresh,
            "encoder_calls": self.cache.encoder_calls,
            "encoded_now": self.cache.encoder_calls - encoded_before,
            "cached_images": len(self.cache),
            "latencies": {"total": round(seconds, 4)},
        }
        logger.info(
            f"click request ({change.kind}) on {path}, label '{label}', client '{client}': {len(state.clicks)} "
            f"click(s), {answer['voxels']} voxels, IoU {answer['iou']}, {answer['encoded_now']} encoder pass(es) "
            f"({answer['encoder_calls']} since start), {seconds:.3f} s; clicks in the order made (voxel, positive): "
            f"{[(list(point), positive) for point, positive in state.clicks]}"
        )
        return file_name, answer


def _apply(state: _State, change: ClickChange, prepared: PreparedImage, inferer: ClickWindowInferer) -> _State:
    """The state after ``change``: clicks added to the session, the latest undone, or a fresh session replayed."""
    session = state.session
    if change.kind == "unchanged":
        return state
    if change.kind == "reset":
        session.reset()
        if state.box is not None:
            session.add_box(*state.box)
        return _State(session, [], state.box)
    if change.kind == "added":
        done = 0
        try:
            for point, positive in change.added:
                session.add_click(point, positive=bool(positive))
                done += 1
        except ValueError:
            for _ in range(done):
                session.track.undo()
            raise
        return _State(session, change.clicks, state.box)
    if change.kind == "removed" and change.undo:
        for _ in range(change.undo):
            session.track.undo()
        return _State(session, change.clicks, state.box)
    fresh = InteractiveSession.on_prepared(prepared, inferer)  # replay the box and remaining clicks in the order made
    if state.box is not None:
        fresh.add_box(*state.box)
    for point, positive in change.clicks:
        fresh.add_click(point, positive=bool(positive))
    return _State(fresh, change.clicks, state.box)


def _roi(value: object, shape: tuple[int, ...]) -> tuple[slice, ...] | None:
    """Slicer's ROI ``[i0, i1, j0, j1, k0, k1]`` (corners inclusive, either order) as slices of the image, or ``None``."""
    if value is None or value == []:
        return None
    if not isinstance(value, list) or len(value) != 6 or not all(isinstance(v, int) for v in value):
        raise _bad_request(f"'roi' must be six integers [i0, i1, j0, j1, k0, k1], got {value!r}.")
    lo = [max(0, min(value[2 * a], value[2 * a + 1])) for a in range(3)]
    hi = [min(shape[a], max(value[2 * a], value[2 * a + 1]) + 1) for a in range(3)]
    return tuple(slice(a, max(a, b)) for a, b in zip(lo, hi))


def _clipped(box: tuple[slice, ...], block: np.ndarray, roi: tuple[slice, ...]) -> tuple[tuple[slice, ...], np.ndarray]:
    """A mask given as a box and the mask there, cut to the ROI's slices."""
    lo = [max(b.start, r.start) for b, r in zip(box, roi)]
    hi = [max(a, min(b.stop, r.stop)) for a, b, r in zip(lo, box, roi)]
    inner = tuple(slice(a - b.start, c - b.start) for a, c, b in zip(lo, hi, box))
    return tuple(slice(a, c) for a, c in zip(lo, hi)), block[inner]


def _roi_box(value: object, shape: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    """Slicer's ROI as the box prompt: its lowest and highest corner voxels inside the image, or ``None``."""
    if value is None or value == []:
        return None
    lo = tuple(max(0, min(value[2 * a], value[2 * a + 1])) for a in range(3))  # type: ignore[index]
    hi = tuple(min(shape[a] - 1, max(value[2 * a], value[2 * a + 1])) for a in range(3))  # type: ignore[index]
    if any(h < v for v, h in zip(lo, hi)):
        raise _bad_request(f"'roi' {value!r} lies outside the image of shape {shape}.")
    return lo, hi
