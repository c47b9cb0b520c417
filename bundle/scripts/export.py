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
"""TorchScript export of SAM-Med3D in two parts, the parts that the click inference calls at different rates.

* ``models/encoder.ts``: the image encoder, traced for one ``(1, 1, 128, 128, 128)`` window;
* ``models/decoder.ts``: prompt encoder + mask decoder (the single-mask output) + trilinear upsampling, traced
  with three methods: ``forward(image_embeddings, points, point_labels, mask_prompt)``,
  ``decode_without_points(image_embeddings, mask_prompt)`` and ``upsample(low_res_logits)``. The number of objects
  ``K`` and of clicks ``N`` stay free.

``networks.torchscript.TorchScriptSAMMed3D`` runs the two files behind ``SAMMed3D``'s ``encode`` / ``decode`` /
``upsample`` / ``forward`` interface; ``configs/inference_torchscript.json`` makes the inference use it.

Run from ``bundle/`` (the weights are those the bundle finds, ``scripts.load_network``; the saved modules are
compared with the eager network before the command returns)::

    python -m scripts.export --ckpt_dir models --out_dir models
    python -m monai.bundle run --config_file "['configs/inference.json','configs/inference_torchscript.json']"

``--format onnx`` writes the same parts as ONNX graphs for onnxruntime instead (``scripts/onnx_export.py``, run by
``networks.onnx_runner.OnnxSAMMed3D``)::

    python -m scripts.export --ckpt_dir models --out_dir models --format onnx

Trace on the device the modules will run on (``--device``; by default ``cuda:0`` when CUDA is available, as the
bundle's ``device``). A trace keeps the example's dtype (float32) and the device of the tensors it creates: the image
encoder creates its relative-position index on the tracing device, so ``encoder.ts`` belongs to that device
(:func:`device_constants` lists such constants); ``decoder.ts`` has none.
"""

from __future__ import annotations

import json
import logging
import os
import re
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .networks.sam_med3d import SAMMed3D
from .networks.torchscript import DECODER_FILE, ENCODER_FILE, EXPORT_INFO, TorchScriptSAMMed3D
from .weights import load_network

__all__ = [
    "PromptDecoder",
    "trace_encoder",
    "trace_decoder",
    "export_torchscript",
    "compare_with_eager",
    "device_constants",
    "export",
    "FORMATS",
]

logger = logging.getLogger(__name__)

_DEVICE_CONSTANT = re.compile(r"torch\.device\(\"[a-z]+(:\d+)?\"\)")


class PromptDecoder(nn.Module):
    """The prompt encoder, the mask decoder (single-mask output) and the upsampling of ``SAMMed3D``, as plain tensors.

    Every argument is a tensor (no ``None``), so the module traces; the mask-only prompt is a separate method. The
    dense positional encoding of the embedding grid is computed once here and kept as a buffer: it depends on the
    weights only, and computing it in the trace would record the device it was traced on.

    Args:
        network: the ``SAMMed3D`` whose prompt encoder and mask decoder are taken (shared, not copied).
    """

    def __init__(self, network: SAMMed3D) -> None:
        super().__init__()
        self.prompt_encoder = network.prompt_encoder
        self.mask_decoder = network.mask_decoder
        self.img_size = network.img_size
        with torch.no_grad():
            self.register_buffer("image_pe", network.prompt_encoder.get_dense_pe().clone())

    def forward(
        self,
        image_embeddings: torch.Tensor,
        points: torch.Tensor,
        point_labels: torch.Tensor,
        mask_prompt: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``SAMMed3D.decode`` with clicks and a mask prompt (zeros on the first click).

        Args:
            image_embeddings: ``(1 or K, C, g, g, g)``.
            points: ``(K, N, 3)`` voxel indices of the network input.
            point_labels: ``(K, N)``.
            mask_prompt: ``(K, 1, 4g, 4g, 4g)``.

        Returns:
            Logits ``(K, 1, 4g, 4g, 4g)`` and IoU predictions ``(K, 1)``.
        """
        sparse, dense = self.prompt_encoder(points=(points, point_labels), boxes=None, masks=mask_prompt)
        return self.mask_decoder(image_embeddings, self.image_pe, sparse, dense, False)

    def decode_without_points(
        self, image_embeddings: torch.Tensor, mask_prompt: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``SAMMed3D.decode`` with a mask prompt only (what ``SAMMed3D.forward(image)`` decodes).

        Args:
            image_embeddings: ``(1 or K, C, g, g, g)``.
            mask_prompt: ``(K, 1, 4g, 4g, 4g)``.

        Returns:
            Logits ``(K, 1, 4g, 4g, 4g)`` and IoU predictions ``(K, 1)``.
        """
        sparse, dense = self.prompt_encoder(points=None, boxes=None, masks=mask_prompt)
        return self.mask_decoder(image_embeddings, self.image_pe, sparse, dense, False)

    def upsample(self, low_res_logits: torch.Tensor) -> torch.Tensor:
        """``SAMMed3D.upsample``: trilinear to the network input size.

        Args:
            low_res_logits: ``(K, M, 4g, 4g, 4g)``.
        """
        return F.interpolate(low_res_logits, size=(self.img_size,) * 3, mode="trilinear", align_corners=False)


def _random_embeddings(network: SAMMed3D, generator: torch.Generator) -> torch.Tensor:
    """A random ``(1, C, g, g, g)`` image embedding of ``network``'s size."""
    return torch.randn(
        1, network.prompt_encoder.embed_dim, *network.prompt_encoder.image_embedding_size, generator=generator
    )


def _example_inputs(network: SAMMed3D, device: torch.device) -> dict[str, tuple[torch.Tensor, ...]]:
    """Trace examples: one object, two clicks (one positive, one negative), a non-zero mask prompt."""
    generator = torch.Generator().manual_seed(0)
    embeddings = _random_embeddings(network, generator).to(device)
    points = torch.tensor([[[60.0, 70.0, 50.0], [30.0, 90.0, 100.0]]], device=device)
    labels = torch.tensor([[1, 0]], device=device)
    mask = torch.randn(1, 1, *network.mask_input_size, generator=generator).to(device)
    return {
        "forward": (embeddings, points, labels, mask),
        "decode_without_points": (embeddings, mask),
        "upsample": (mask,),
    }


def _trace_quietly(fn: Callable[..., torch.jit.ScriptModule], *args: Any, **kwargs: Any) -> torch.jit.ScriptModule:
    """Run a ``torch.jit.trace*`` call without its ``TracerWarning``s.

    They come from the input checks of the eager modules (shape comparisons, ``tolist``), which tracing evaluates
    once on the example and drops; :class:`TorchScriptSAMMed3D` runs those checks in Python instead, and the tests
    compare the traces with the eager network on other shapes.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        return fn(*args, check_trace=False, **kwargs)


def trace_encoder(network: SAMMed3D, device: str | torch.device = "cpu") -> torch.jit.ScriptModule:
    """Trace the image encoder for one ``(1, 1, S, S, S)`` window (``S = network.img_size``).

    Args:
        network: the network, with its weights; it is moved to ``device`` and set to eval mode.
        device: where to trace (and run) the module.
    """
    device = torch.device(device)
    encoder = network.image_encoder.to(device).eval()
    example = torch.randn(1, 1, *(network.img_size,) * 3, generator=torch.Generator().manual_seed(0)).to(device)
    with torch.no_grad():
        return _trace_quietly(torch.jit.trace, encoder, example)


def trace_decoder(network: SAMMed3D, device: str | torch.device = "cpu") -> torch.jit.ScriptModule:
    """Trace :class:`PromptDecoder` (``forward``, ``decode_without_points``, ``upsample``) for any ``K`` and ``N``.

    Args:
        network: the network, with its weights; it is moved to ``device`` and set to eval mode.
        device: where to trace (and run) the module.
    """
    device = torch.device(device)
    decoder = PromptDecoder(network.to(device).eval()).eval()
    with torch.no_grad():
        return _trace_quietly(torch.jit.trace_module, decoder, _example_inputs(network, device))


def device_constants(path: str | os.PathLike) -> list[str]:
    """The ``torch.device("...")`` constants in the code of a saved TorchScript module (empty: device-portable).

    Args:
        path: a file written by ``torch.jit.save``.
    """
    found = []
    with zipfile.ZipFile(path) as archive:
        for name in archive.namelist():
            if "/code/" in name and name.endswith(".py"):
                text = archive.read(name).decode("utf-8")
                found += [f"{name}: {m.group(0)}" for m in _DEVICE_CONSTANT.finditer(text)]
    return found


def export_torchscript(
    network: SAMMed3D,
    out_dir: str | os.PathLike,
    device: str | torch.device = "cpu",
    verify: bool = True,
    atol: float = 1e-4,
) -> tuple[Path, Path]:
    """Trace and save ``encoder.ts`` and ``decoder.ts`` of ``network`` into ``out_dir``.

    Each file carries ``sam_med3d_export.json`` (``torch.jit.save``'s extra files): the part, the network input
    size, the size of the low-resolution masks, the device it was traced on and the torch version.

    Args:
        network: the network with its weights (moved to ``device``).
        out_dir: where to write the two files (created if needed; existing files are replaced).
        device: where to trace; use the device the modules will run on.
        verify: reload both files and compare them with the eager network on a window and on prompts of other
            sizes than the trace examples (2 objects x 3 clicks, and a mask-only prompt).
        atol: largest absolute difference of the outputs accepted by ``verify``.

    Returns:
        The paths of ``encoder.ts`` and ``decoder.ts``.

    Raises:
        RuntimeError: ``verify`` found a difference larger than ``atol``.
    """
    device = torch.device(device)
    network = network.to(device).eval()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = (out / ENCODER_FILE, out / DECODER_FILE)
    modules = {"encoder": trace_encoder(network, device), "decoder": trace_decoder(network, device)}
    for path, (part, module) in zip(paths, modules.items()):
        info = {
            "part": part,
            "img_size": network.img_size,
            "mask_input_size": list(network.mask_input_size),
            "traced_on": str(device),
            "torch_version": torch.__version__,
        }
        tmp = path.with_name(f".{path.name}.partial-{os.getpid()}")
        torch.jit.save(module, str(tmp), _extra_files={EXPORT_INFO: json.dumps(info)})
        os.replace(tmp, path)  # never leave a half-written file under the final name
        constants = sorted({c.split(": ")[-1] for c in device_constants(path)})
        if constants:
            logger.info(f"{path} holds the device constants {constants}: run it on the device it was traced on.")
        logger.info(f"wrote {path}")
    if verify:
        image = torch.randn(1, 1, *(network.img_size,) * 3, generator=torch.Generator().manual_seed(2)).to(device)
        errors = compare_with_eager(network, TorchScriptSAMMed3D(*paths, map_location=device), image, atol)
        logger.info(f"largest differences to the eager network: {errors}")
    return paths


def _max_difference(name: str, expected: torch.Tensor, actual: torch.Tensor, atol: float) -> float:
    error = (expected.float() - actual.float()).abs().max().item()
    if not error <= atol:  # also catches NaN
        raise RuntimeError(f"{name}: the exported output differs from the eager network by {error:.3g} (> {atol}).")
    return error


def compare_with_eager(
    network: SAMMed3D, scripted: TorchScriptSAMMed3D, image: torch.Tensor | None = None, atol: float = 1e-4
) -> dict[str, float]:
    """Compare the exported modules with the eager network on prompts of other sizes than the trace examples.

    Args:
        network: the eager network the modules were exported from.
        scripted: the exported modules.
        image: a ``(1, 1, S, S, S)`` window on the modules' device to compare the encoders on; ``None`` compares
            the decoders only, on a random image embedding.
        atol: largest absolute difference accepted.

    Returns:
        The largest absolute difference of each output (encoder, decoder with 2 objects x 3 clicks, its IoU,
        mask-only decoder, upsampling).

    Raises:
        RuntimeError: an output differs by more than ``atol``.
    """
    device = next(scripted.parameters()).device
    generator = torch.Generator().manual_seed(1)
    points = (torch.rand(2, 3, 3, generator=generator) * (network.img_size - 1)).to(device)
    labels = torch.tensor([[1, 0, 1], [1, 1, -1]], device=device)
    errors = {}
    with torch.no_grad():
        if image is None:
            embeddings = _random_embeddings(network, generator).to(device)
        else:
            embeddings = network.encode(image)
            errors["encoder"] = _max_difference("encoder", embeddings, scripted.encode(image), atol)
        low_res, iou = network.decode(embeddings, points, labels)
        ts_low_res, ts_iou = scripted.decode(embeddings, points, labels)
        errors["decoder"] = _max_difference("decoder", low_res, ts_low_res, atol)
        errors["iou"] = _max_difference("decoder IoU", iou, ts_iou, atol)
        mask_only = network.decode(embeddings)[0]
        errors["mask_only"] = _max_difference("decoder (mask only)", mask_only, scripted.decode(embeddings)[0], atol)
        errors["upsample"] = _max_difference("upsample", network.upsample(low_res), scripted.upsample(low_res), atol)
    return errors


FORMATS = ("torchscript", "onnx")


def export(
    ckpt_dir: str = "models",
    out_dir: str | None = None,
    device: str | None = None,
    untrained: bool = False,
    verify: bool = True,
    format: str = "torchscript",
) -> tuple[str, ...]:
    """Command line: export the bundle's weights to ``encoder.ts`` and ``decoder.ts``, or to ONNX.

    Args:
        ckpt_dir: where the weights are (found and loaded strictly by ``scripts.load_network``).
        out_dir: where to write the modules; defaults to ``ckpt_dir``.
        device: where to trace, i.e. the device the modules will run on; by default ``cuda:0`` when CUDA is
            available, else ``cpu`` (the bundle's ``device``). ONNX is exported on the CPU (``cpu`` only).
        untrained: export an untrained network (pipeline tests only: its masks are meaningless).
        verify: compare the saved modules with the eager network before returning.
        format: ``torchscript`` (``encoder.ts``, ``decoder.ts``) or ``onnx`` (``encoder.onnx``, ``decoder.onnx``,
            ``decoder_mask_only.onnx``, ``upsample.onnx``: ``scripts/onnx_export.py``; needs ``onnx``,
            ``onnxscript`` and, for ``verify``, ``onnxruntime``).

    Returns:
        The paths written.
    """
    if format not in FORMATS:
        raise ValueError(f"--format must be one of {', '.join(FORMATS)}, got {format!r}.")
    if format == "onnx" and device not in (None, "cpu"):
        raise ValueError(f"the ONNX export runs on the CPU (onnxruntime's CPU provider), not on {device!r}.")
    network = load_network(ckpt_dir, untrained=untrained)
    target = ckpt_dir if out_dir is None else out_dir
    if format == "onnx":
        from .onnx_export import export_onnx  # onnx and onnxscript are needed for this format only

        return tuple(str(p) for p in export_onnx(network, target, verify=verify).values())
    if device is None:
        device = "cuda:0" if torch.cuda.is_available() else "cpu"
    paths = export_torchscript(network, target, device=device, verify=verify)
    return str(paths[0]), str(paths[1])


if __name__ == "__main__":
    import fire

    from .errors import exit_on_user_error

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    exit_on_user_error(fire.Fire, export)  # bad input (no weights, a mismatched file): one ``error:`` line, exit 1
