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
"""TorchScript export of SAM-Med3D in two parts, and the module that runs them in the bundle.

The network is exported as the two parts that the click inference calls at different rates:

* ``models/encoder.ts``: the image encoder, traced for one ``(1, 1, 128, 128, 128)`` window;
* ``models/decoder.ts``: prompt encoder + mask decoder (the single-mask output) + trilinear upsampling, traced
  with three methods: ``forward(image_embeddings, points, point_labels, mask_prompt)``,
  ``decode_without_points(image_embeddings, mask_prompt)`` and ``upsample(low_res_logits)``. The number of objects
  ``K`` and of clicks ``N`` stay free.

:class:`TorchScriptSAMMed3D` holds the two TorchScript modules behind the ``encode`` / ``decode`` / ``upsample`` /
``forward`` interface of ``SAMMed3D`` (input checks run in Python, as tracing drops them);
``configs/inference_torchscript.json`` makes the inference use it.

Run from ``bundle/`` (the weights are found as the bundle finds them, ``models/model.pt`` then
``models/sam_med3d_turbo.pth``; the saved modules are compared with the eager network before the command returns)::

    python -m scripts.export --ckpt_dir models --out_dir models
    python -m monai.bundle run --config_file "['configs/inference.json','configs/inference_torchscript.json']"

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

from .networks.prompt_encoder import check_point_prompts
from .networks.sam_med3d import SAMMed3D, decoder_mask_prompt
from .weights import load_weights

__all__ = [
    "ENCODER_FILE",
    "DECODER_FILE",
    "PromptDecoder",
    "TorchScriptSAMMed3D",
    "trace_encoder",
    "trace_decoder",
    "export_torchscript",
    "compare_with_eager",
    "check_exported",
    "device_constants",
    "export",
]

ENCODER_FILE = "encoder.ts"
DECODER_FILE = "decoder.ts"
EXPORT_INFO = "sam_med3d_export.json"

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


def check_exported(encoder: str | os.PathLike | None = None, decoder: str | os.PathLike | None = None) -> None:
    """Raise a ``FileNotFoundError`` with the export command unless the given TorchScript files exist.

    Args:
        encoder: the path of ``encoder.ts``, or ``None`` to skip it.
        decoder: the path of ``decoder.ts``, or ``None`` to skip it.
    """
    for part, path in (("encoder", encoder), ("decoder", decoder)):
        if path is not None and not Path(path).is_file():
            raise FileNotFoundError(
                f"TorchScript {part} not found: {path}. Export the bundle's weights first, in the bundle folder: "
                "`python -m scripts.export --ckpt_dir models --out_dir models`."
            )


def _load(
    path: str | os.PathLike, part: str, map_location: str | torch.device | None
) -> tuple[torch.jit.ScriptModule, dict]:
    """Load a module written by :func:`export_torchscript` and its ``sam_med3d_export.json``."""
    check_exported(**{part: path})
    extra = {EXPORT_INFO: ""}
    module = torch.jit.load(str(path), map_location=map_location, _extra_files=extra)
    info = json.loads(extra[EXPORT_INFO]) if extra[EXPORT_INFO] else {}
    if info.get("part") != part:
        raise ValueError(f"{path} is not a SAM-Med3D {part} written by scripts.export (its {EXPORT_INFO}: {info}).")
    if map_location is not None and torch.device(map_location).type != torch.device(info["traced_on"]).type:
        logger.warning(
            f"{path} was traced on {info['traced_on']} and is loaded to {map_location}; if it fails, export it on "
            "the device it runs on (`python -m scripts.export --device ...`)."
        )
    return module, info


def _max_difference(name: str, expected: torch.Tensor, actual: torch.Tensor, atol: float) -> float:
    error = (expected.float() - actual.float()).abs().max().item()
    if not error <= atol:  # also catches NaN
        raise RuntimeError(f"{name}: the TorchScript output differs from the eager network by {error:.3g} (> {atol}).")
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


class TorchScriptSAMMed3D(nn.Module):
    """``SAMMed3D``'s inference interface (``encode``, ``decode``, ``upsample``, ``forward``) on the exported modules.

    Args:
        encoder: ``encoder.ts`` (a path or a loaded module).
        decoder: ``decoder.ts`` (a path or a loaded module).
        map_location: where to load the modules (``torch.jit.load``'s ``map_location``); ``None`` keeps the device
            they were saved from.

    Raises:
        FileNotFoundError: a file is missing; the message gives the export command.
    """

    def __init__(
        self, encoder: str | os.PathLike, decoder: str | os.PathLike, map_location: str | torch.device | None = None
    ) -> None:
        super().__init__()
        self.encoder, encoder_info = _load(encoder, "encoder", map_location)
        self.decoder, decoder_info = _load(decoder, "decoder", map_location)
        if encoder_info["img_size"] != decoder_info["img_size"]:
            raise ValueError(f"{encoder} and {decoder} were exported from networks of different sizes.")
        self.img_size: int = decoder_info["img_size"]
        self.mask_input_size: tuple[int, int, int] = tuple(decoder_info["mask_input_size"])  # type: ignore[assignment]

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        """Image embeddings of one window.

        Args:
            image: ``(1, 1, S, S, S)`` normalised intensities (the encoder was traced for one window).

        Returns:
            ``(1, C, S/16, S/16, S/16)``.
        """
        expected = (1, 1, self.img_size, self.img_size, self.img_size)
        if tuple(image.shape) != expected:
            raise ValueError(f"the TorchScript encoder takes one window {expected}, got {tuple(image.shape)}.")
        return self.encoder(image)

    def decode(
        self,
        image_embeddings: torch.Tensor,
        points: torch.Tensor | None = None,
        point_labels: torch.Tensor | None = None,
        mask_prompt: torch.Tensor | None = None,
        multimask_output: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Low-resolution logits for ``K`` objects, as ``SAMMed3D.decode``.

        Args:
            image_embeddings: ``(1, C, g, g, g)`` shared by all objects, or ``(K, C, g, g, g)``.
            points: ``(K, N, 3)`` voxel indices of the network input, or ``None`` for a mask-only prompt.
            point_labels: ``(K, N)``, required with ``points``.
            mask_prompt: previous low-resolution logits ``(K, 1, 4g, 4g, 4g)``, or ``None`` (zeros).
            multimask_output: must be ``False``: only the single-mask output is exported (the multimask outputs were
                never trained upstream).

        Returns:
            Logits ``(K, 1, 4g, 4g, 4g)`` and IoU predictions ``(K, 1)``.
        """
        if multimask_output:
            raise ValueError("the TorchScript decoder has the single-mask output only (multimask_output=False).")
        if points is not None and point_labels is not None:  # the traced prompt encoder lost its checks
            check_point_prompts(points, point_labels, allowed_labels=(-1, 0, 1))
        given_mask = mask_prompt is not None
        mask_prompt = decoder_mask_prompt(image_embeddings, points, point_labels, mask_prompt, self.mask_input_size)
        num_objects = mask_prompt.shape[0] if points is None else points.shape[0]
        if given_mask and tuple(mask_prompt.shape) != (num_objects, 1, *self.mask_input_size):
            raise ValueError(
                f"mask prompt must have shape {(num_objects, 1, *self.mask_input_size)}, got {tuple(mask_prompt.shape)}."
            )
        if points is None:
            return self.decoder.decode_without_points(image_embeddings, mask_prompt)
        return self.decoder(image_embeddings, points, point_labels, mask_prompt)

    def upsample(self, low_res_logits: torch.Tensor) -> torch.Tensor:
        """Trilinear upsampling of low-resolution logits to the network input size.

        Args:
            low_res_logits: ``(K, M, 4g, 4g, 4g)``.
        """
        return self.decoder.upsample(low_res_logits)

    def forward(
        self,
        image: torch.Tensor,
        points: torch.Tensor | None = None,
        point_labels: torch.Tensor | None = None,
        mask_prompt: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Full-resolution logits for one window and one prompt, as ``SAMMed3D.forward``.

        Args:
            image: ``(1, 1, S, S, S)``.
            points: ``(1, N, 3)`` or ``None``.
            point_labels: ``(1, N)`` or ``None``.
            mask_prompt: ``(1, 1, 4g, 4g, 4g)`` or ``None``.

        Returns:
            Logits ``(1, 1, S, S, S)``.
        """
        low_res, _ = self.decode(self.encode(image), points, point_labels, mask_prompt)
        return self.upsample(low_res)


def export(
    ckpt_dir: str = "models",
    out_dir: str | None = None,
    device: str | None = None,
    untrained: bool = False,
    verify: bool = True,
) -> tuple[str, str]:
    """Command line: export the bundle's weights to ``encoder.ts`` and ``decoder.ts``.

    Args:
        ckpt_dir: where the weights are (``model.pt``, then ``sam_med3d_turbo.pth``), loaded strictly.
        out_dir: where to write the modules; defaults to ``ckpt_dir``.
        device: where to trace, i.e. the device the modules will run on; by default ``cuda:0`` when CUDA is
            available, else ``cpu`` (the bundle's ``device``).
        untrained: export an untrained network (pipeline tests only: its masks are meaningless).
        verify: compare the saved modules with the eager network before returning.

    Returns:
        The paths written.
    """
    if device is None:
        device = "cuda:0" if torch.cuda.is_available() else "cpu"
    network = load_weights(SAMMed3D(), ckpt_dir, untrained)
    paths = export_torchscript(network, ckpt_dir if out_dir is None else out_dir, device=device, verify=verify)
    return str(paths[0]), str(paths[1])


if __name__ == "__main__":
    import fire

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    fire.Fire(export)
