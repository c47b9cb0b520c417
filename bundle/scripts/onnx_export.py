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
"""ONNX export of SAM-Med3D, one graph per part (``python -m scripts.export --format onnx``).

=========================== ============================================================ ===========================
file                        inputs                                                        outputs
=========================== ============================================================ ===========================
``encoder.onnx``            ``image`` float32 ``(1, 1, 128, 128, 128)``                   ``image_embeddings`` float32
                                                                                          ``(1, 384, 8, 8, 8)``
``decoder.onnx``            ``image_embeddings`` ``(1, 384, 8, 8, 8)``, ``points`` float32 ``low_res_logits``
                            ``(K, N, 3)``, ``point_labels`` int64 ``(K, N)``,              ``(K, 1, 32, 32, 32)``,
                            ``mask_prompt`` float32 ``(K, 1, 32, 32, 32)``                 ``iou_predictions (K, 1)``
``decoder_mask_only.onnx``  ``image_embeddings``, ``mask_prompt``                          as ``decoder.onnx``
``upsample.onnx``           ``low_res_logits`` ``(K, M, 32, 32, 32)``                      ``logits (K, M, 128^3)``
=========================== ============================================================ ===========================

(Sizes of the released network; ``K`` objects, ``N`` clicks and ``M`` masks stay free.) Points are voxel indices of
the 128^3 network input, labels 1 positive, 0 negative, -1 padding; the first click goes with a zero mask prompt.
The decoders are :class:`scripts.export.PromptDecoder`, the module the TorchScript export traces. The graphs come
from ``torch.export`` (``torch.onnx.export(..., dynamo=True)``): the TorchScript-based exporter has no ``logaddexp``,
which the encoder's exact windowed attention uses.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from pathlib import Path

import torch
from torch import nn

from .export import PromptDecoder, compare_with_eager
from .networks.onnx_runner import ONNX_FILES, ONNX_INFO, OnnxSAMMed3D
from .networks.sam_med3d import SAMMed3D

__all__ = ["MaskOnlyDecoder", "Upsampler", "export_onnx"]

logger = logging.getLogger(__name__)


class MaskOnlyDecoder(nn.Module):
    """``PromptDecoder.decode_without_points`` as a module's ``forward`` (``torch.export`` exports ``forward``).

    Args:
        decoder: the shared :class:`PromptDecoder`.
    """

    def __init__(self, decoder: PromptDecoder) -> None:
        super().__init__()
        self.decoder = decoder

    def forward(self, image_embeddings: torch.Tensor, mask_prompt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """See ``PromptDecoder.decode_without_points``.

        Args:
            image_embeddings: ``(1, C, g, g, g)``.
            mask_prompt: ``(K, 1, 4g, 4g, 4g)``.
        """
        return self.decoder.decode_without_points(image_embeddings, mask_prompt)


class Upsampler(nn.Module):
    """``PromptDecoder.upsample`` as a module's ``forward``.

    Args:
        decoder: the shared :class:`PromptDecoder`.
    """

    def __init__(self, decoder: PromptDecoder) -> None:
        super().__init__()
        self.decoder = decoder

    def forward(self, low_res_logits: torch.Tensor) -> torch.Tensor:
        """See ``PromptDecoder.upsample``.

        Args:
            low_res_logits: ``(K, M, 4g, 4g, 4g)``.
        """
        return self.decoder.upsample(low_res_logits)


def _parts(network: SAMMed3D) -> dict[str, tuple[nn.Module, dict, dict]]:
    """Each part: its module, example inputs by name and their free axes.

    The examples have 2 objects, 3 clicks and 2 masks: ``torch.export`` fixes an axis whose example size is 0 or 1,
    so 1 would bake a single object into the graph. The image embedding is one window's, shared by the objects
    (``(1, ...)``: the decoder's broadcast over objects then needs no branch on its batch).
    """
    generator = torch.Generator().manual_seed(0)
    decoder = PromptDecoder(network).eval()
    embedding = torch.randn(
        1, network.prompt_encoder.embed_dim, *network.prompt_encoder.image_embedding_size, generator=generator
    )
    mask = torch.randn(2, 1, *network.mask_input_size, generator=generator)
    objects, clicks = torch.export.Dim("K"), torch.export.Dim("N")
    return {
        "encoder": (
            network.image_encoder,
            {"image": torch.randn(1, 1, *(network.img_size,) * 3, generator=generator)},
            {"image": None},
        ),
        "decoder": (
            decoder,
            {
                "image_embeddings": embedding,
                "points": torch.rand(2, 3, 3, generator=generator) * (network.img_size - 1),
                "point_labels": torch.tensor([[1, 0, 1], [1, 1, -1]]),
                "mask_prompt": mask,
            },
            {
                "image_embeddings": None,
                "points": {0: objects, 1: clicks},
                "point_labels": {0: objects, 1: clicks},
                "mask_prompt": {0: objects},
            },
        ),
        "decoder_mask_only": (
            MaskOnlyDecoder(decoder),
            {"image_embeddings": embedding, "mask_prompt": mask},
            {"image_embeddings": None, "mask_prompt": {0: objects}},
        ),
        "upsample": (
            Upsampler(decoder),
            {"low_res_logits": torch.randn(2, 2, *network.mask_input_size, generator=generator)},
            {"low_res_logits": {0: objects, 1: torch.export.Dim("M")}},
        ),
    }


_OUTPUTS = {
    "encoder": ["image_embeddings"],
    "decoder": ["low_res_logits", "iou_predictions"],
    "decoder_mask_only": ["low_res_logits", "iou_predictions"],
    "upsample": ["logits"],
}


def _export_part(module: nn.Module, inputs: dict, axes: dict, outputs: list[str], path: Path, info: dict) -> None:
    """Export one part to ``path`` (written under a temporary name, then renamed) with ``info`` in its metadata."""
    tmp = path.with_name(f".{path.name}.partial-{os.getpid()}")
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.export's deprecation notices about its own internals
        program = torch.onnx.export(
            module,
            tuple(inputs.values()),
            input_names=list(inputs),
            output_names=outputs,
            dynamic_shapes=tuple(axes.values()),  # by position: the modules name their arguments differently
            dynamo=True,
            external_data=False,  # one self-contained file per part (the full encoder is 0.37 GB, under 2 GB)
            verbose=False,
        )
    program.model.metadata_props[ONNX_INFO] = json.dumps(info)
    program.save(str(tmp), external_data=False)
    os.replace(tmp, path)  # never leave a half-written file under the final name


def export_onnx(
    network: SAMMed3D, out_dir: str | os.PathLike, verify: bool = True, atol: float = 1e-4
) -> dict[str, Path]:
    """Export the parts of ``network`` (on the CPU, float32) into ``out_dir`` as :data:`ONNX_FILES`.

    Each file's ``metadata_props`` hold ``sam_med3d_export``: the part, the network's sizes, whether its weights embed
    boxes (not exported) and the torch version.

    Args:
        network: the network with its weights (moved to the CPU, eval mode).
        out_dir: where to write the files (created if needed; existing files are replaced).
        verify: load the files with onnxruntime and compare them with the eager network on a window, on random
            clicks (2 objects x 3 clicks, padding labels included) and on a mask-only prompt.
        atol: largest absolute difference accepted by ``verify``.

    Returns:
        The path of each part.

    Raises:
        RuntimeError: ``verify`` found a difference larger than ``atol``.
    """
    # the optimiser logs every pass at INFO (hundreds of lines), the exporter warns of each torchvision op it skips
    for name, level in (("onnxscript", logging.WARNING), ("onnx_ir", logging.WARNING), ("torch.onnx", logging.ERROR)):
        logging.getLogger(name).setLevel(level)
    network = network.cpu().eval()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    info = {
        "img_size": network.img_size,
        "embed_dim": network.prompt_encoder.embed_dim,
        "embedding_size": list(network.prompt_encoder.image_embedding_size),
        "mask_input_size": list(network.mask_input_size),
        "box_embeddings": bool(network.box_embeddings),
        "torch_version": torch.__version__,
    }
    paths = {}
    for part, (module, inputs, axes) in _parts(network).items():
        paths[part] = out / ONNX_FILES[part]
        _export_part(module, inputs, axes, _OUTPUTS[part], paths[part], {"part": part, **info})
        logger.info(f"wrote {paths[part]}")
    if verify:
        image = torch.randn(1, 1, *(network.img_size,) * 3, generator=torch.Generator().manual_seed(2))
        errors = compare_with_eager(network, OnnxSAMMed3D(out), image, atol)
        logger.info(f"largest differences to the eager network: {errors}")
    return paths
