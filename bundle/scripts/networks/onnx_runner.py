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
"""SAM-Med3D from its ONNX export behind ``SAMMed3D``'s inference interface, run by onnxruntime on the CPU.

``scripts/onnx_export.py`` writes the files (``python -m scripts.export --format onnx``); :class:`OnnxSAMMed3D`
runs them with the input checks of the eager network (the graphs have none) and hands torch tensors back, so
``PreparedImage``, ``InteractiveSession`` and the command line take it as they take ``SAMMed3D``.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .exported import ExportedSAMMed3D

__all__ = ["ONNX_FILES", "ONNX_INFO", "OnnxSAMMed3D", "check_onnx_exported"]

# part -> file name; each file is one graph (ONNX has no methods)
ONNX_FILES = {
    "encoder": "encoder.onnx",
    "decoder": "decoder.onnx",
    "decoder_mask_only": "decoder_mask_only.onnx",
    "upsample": "upsample.onnx",
}
ONNX_INFO = "sam_med3d_export"  # the key of the export's description in each file's metadata_props

logger = logging.getLogger(__name__)


def check_onnx_exported(onnx_dir: str | os.PathLike) -> None:
    """Raise a ``FileNotFoundError`` with the export command unless every ONNX file is in ``onnx_dir``.

    Args:
        onnx_dir: the folder the export wrote into.
    """
    missing = [name for name in ONNX_FILES.values() if not (Path(onnx_dir) / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"ONNX export not found: {', '.join(missing)} missing in {onnx_dir}. Export the bundle's weights first, "
            "in the bundle folder: `python -m scripts.export --ckpt_dir models --out_dir models --format onnx`."
        )


def _session(path: Path, part: str, threads: int) -> tuple[Any, dict]:
    """An onnxruntime CPU session of one exported part and the description the export stored in it."""
    import onnxruntime as ort  # an optional dependency: only this runner needs it

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # warnings about unused initializers are noise here
    session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    info = json.loads(session.get_modelmeta().custom_metadata_map.get(ONNX_INFO, "{}"))
    if info.get("part") != part:
        raise ValueError(f"{path} is not the SAM-Med3D {part} written by scripts.export (its {ONNX_INFO}: {info}).")
    return session, info


class OnnxSAMMed3D(ExportedSAMMed3D):
    """``SAMMed3D``'s inference interface (``encode``, ``decode``, ``upsample``, ``forward``) on onnxruntime.

    The graphs run on the CPU in float32 whatever the bundle's ``device``: tensors come in from any device and go
    back to the device of this module (``.to(device)`` moves only an empty anchor parameter, which is how callers
    read a network's device). Click prompts and mask prompts are exported; class prompts, box embeddings and the
    multimask outputs are not (``box_embeddings`` is ``False``, so a box becomes a click at its centre).

    Args:
        onnx_dir: the folder holding the files of :data:`ONNX_FILES`.
        threads: onnxruntime's intra-op threads; ``None`` takes torch's (``torch.get_num_threads()``), so the
            bundle's ``cpu_threads`` setting holds for both.

    Raises:
        FileNotFoundError: a file is missing; the message gives the export command.
        ValueError: a file is not the part its name says, or the parts come from networks of different sizes.
    """

    box_embeddings = False
    runtime = "ONNX"
    num_class_prompts = 0

    def __init__(self, onnx_dir: str | os.PathLike, threads: int | None = None) -> None:
        super().__init__()
        check_onnx_exported(onnx_dir)
        threads = torch.get_num_threads() if threads is None else int(threads)
        self.onnx_dir = Path(onnx_dir)
        self.sessions, infos = {}, {}
        for part, name in ONNX_FILES.items():
            self.sessions[part], infos[part] = _session(Path(onnx_dir) / name, part, threads)
        if len({(i["img_size"], i["embed_dim"]) for i in infos.values()}) != 1:
            raise ValueError(f"the ONNX files in {onnx_dir} were exported from networks of different sizes.")
        info = infos["decoder"]
        self.img_size: int = info["img_size"]
        self.embedding_shape = (1, info["embed_dim"], *info["embedding_size"])
        self.mask_input_size: tuple[int, int, int] = tuple(info["mask_input_size"])  # type: ignore[assignment]
        if info.get("box_embeddings"):
            logger.warning(
                f"{onnx_dir}: the weights embed boxes, the ONNX export does not: a box is given as a click at its "
                "centre (the released turbo's way), which differs from the eager network's box."
            )
        # prepared.py and the engines read a network's device from its first parameter
        self.anchor = nn.Parameter(torch.empty(0), requires_grad=False)

    def _run(self, part: str, **inputs: torch.Tensor) -> list[torch.Tensor]:
        feed = {name: np.ascontiguousarray(value.detach().cpu().numpy()) for name, value in inputs.items()}
        device = self.anchor.device
        return [torch.from_numpy(out).to(device) for out in self.sessions[part].run(None, feed)]

    def _encode(self, image: torch.Tensor) -> torch.Tensor:
        """The ONNX encoder graph on one checked window."""
        return self._run("encoder", image=image.float())[0]

    def _decode(
        self,
        image_embeddings: torch.Tensor,
        points: torch.Tensor | None,
        point_labels: torch.Tensor | None,
        mask_prompt: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The decoder graphs on checked prompts (``points`` ``None``: the mask-only graph); per-object embeddings
        ``(K, C, g, g, g)`` are run one object at a time (the graphs take a shared embedding)."""
        if tuple(image_embeddings.shape[1:]) != self.embedding_shape[1:]:
            raise ValueError(
                f"image embeddings must be (1 or K, {self.embedding_shape[1:]}), got {image_embeddings.shape}."
            )
        if image_embeddings.shape[0] > 1:  # per-object embeddings: the graph shares one, so one run per object
            parts = [
                self._decode(
                    image_embeddings[k : k + 1],
                    None if points is None else points[k : k + 1],
                    None if point_labels is None else point_labels[k : k + 1],
                    mask_prompt[k : k + 1],
                )
                for k in range(image_embeddings.shape[0])
            ]
            return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
        inputs = {"image_embeddings": image_embeddings.float(), "mask_prompt": mask_prompt.float()}
        if points is None:
            low_res, iou = self._run("decoder_mask_only", **inputs)
        else:
            low_res, iou = self._run("decoder", points=points.float(), point_labels=point_labels.long(), **inputs)
        return low_res, iou

    def upsample(self, low_res_logits: torch.Tensor) -> torch.Tensor:
        """Trilinear upsampling of low-resolution logits to the network input size.

        Args:
            low_res_logits: ``(K, M, 4g, 4g, 4g)``.
        """
        return self._run("upsample", low_res_logits=low_res_logits.float())[0]
