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
"""The SAM-Med3D prompt encoder: random-Fourier point encodings, point-type embeddings, optional box-corner
embeddings (the CVPR 2025 checkpoints), mask downscaling and optional learned class prompts (automatic mode)."""

from __future__ import annotations

import torch
from monai.networks.nets.vista3d import PositionEmbeddingRandom
from torch import nn

from .layers import LayerNorm3d

__all__ = ["PositionEmbeddingRandom3D", "PromptEncoder3D", "check_point_prompts"]


class PositionEmbeddingRandom3D(PositionEmbeddingRandom):
    """MONAI's random-Fourier positional encoding with SAM-Med3D's two quirks.

    The released weights were trained with both, so they are reproduced: the features are ``[sin, cos, sin]`` (the
    third block repeats the first), and the dense grid encodes cell ``(a, b, c)`` as the normalised coordinate of
    ``(b, a, c)`` (first two axes swapped) while points keep their axis order.

    Args:
        num_pos_feats: number of random frequencies; the encoding has ``3 * num_pos_feats`` channels.
    """

    def __init__(self, num_pos_feats: int) -> None:
        super().__init__(num_pos_feats=num_pos_feats)

    def _pe_encoding(self, coords: torch.Tensor) -> torch.Tensor:
        sin_cos = super()._pe_encoding(coords.float())
        return torch.cat([sin_cos, sin_cos[..., : sin_cos.shape[-1] // 2]], dim=-1)

    def forward(self, size: tuple[int, int, int]) -> torch.Tensor:
        """Encoding of every cell centre of a ``size`` grid, channels-first ``(3 * num_pos_feats, *size)``.

        Args:
            size: the grid, e.g. ``(8, 8, 8)``.
        """
        grid = torch.ones(size, device=self.positional_encoding_gaussian_matrix.device, dtype=torch.float32)
        along = [(grid.cumsum(dim=axis) - 0.5) / size[axis] for axis in range(3)]
        return self._pe_encoding(torch.stack([along[1], along[0], along[2]], dim=-1)).permute(3, 0, 1, 2)


def check_point_prompts(points: torch.Tensor, labels: torch.Tensor, allowed_labels: tuple[int, ...]) -> None:
    """Raise a ``ValueError`` unless ``points`` is ``(K, N, 3)``, ``labels`` is ``(K, N)`` and labels are allowed.

    Args:
        points: point coordinates.
        labels: point labels.
        allowed_labels: the label values that are accepted.
    """
    if points.ndim != 3 or points.shape[-1] != 3:
        raise ValueError(f"points must have shape (K, N, 3), got {tuple(points.shape)}.")
    if tuple(labels.shape) != tuple(points.shape[:2]):
        raise ValueError(
            f"point labels must have shape (K, N) = {tuple(points.shape[:2])} to match the points, "
            f"got {tuple(labels.shape)}."
        )
    if torch.compiler.is_exporting():  # label values are data, unknown to the ONNX export (its runner checks them)
        return
    bad = set(torch.unique(labels).tolist()) - set(allowed_labels)
    if bad:
        raise ValueError(f"point labels must be in {sorted(allowed_labels)}, got {sorted(bad)}.")


class PromptEncoder3D(nn.Module):
    """Encodes point, class and mask prompts into sparse tokens and a dense embedding.

    Point labels: 1 positive, 0 negative, -1 padding ("not a point"). Boxes need ``box_embeddings`` (the
    ``CVPR25_3DFM`` checkpoints, four ``point_embeddings``): a box's two corners become two tokens, each the point
    encoding of the corner (voxel centre, ``+0.5``) plus ``point_embeddings[2]`` / ``[3]``, after the point tokens;
    with a box no padding point is appended. The released turbo has two ``point_embeddings`` and no box path. Class
    prompts (``num_class_prompts > 0``) are one learned token per class id, appended
    after the point tokens; with ``num_class_prompts = 0`` (the default) the module and its state_dict are exactly the
    released ones.

    Args:
        embed_dim: prompt embedding width (divisible by 3).
        image_embedding_size: token grid of the image embedding, e.g. ``(8, 8, 8)``.
        input_image_size: size of the network input, e.g. ``(128, 128, 128)``; point coordinates are voxel indices
            of it.
        mask_in_chans: hidden channels of the mask downscaling.
        num_class_prompts: rows of ``class_embeddings`` (class id ``c`` uses row ``c``; 0 creates none).
        box_embeddings: add the two box-corner embeddings (``point_embeddings.2`` / ``.3``) of the CVPR 2025
            checkpoints.
    """

    def __init__(
        self,
        embed_dim: int = 384,
        image_embedding_size: tuple[int, int, int] = (8, 8, 8),
        input_image_size: tuple[int, int, int] = (128, 128, 128),
        mask_in_chans: int = 16,
        num_class_prompts: int = 0,
        box_embeddings: bool = False,
    ) -> None:
        super().__init__()
        if embed_dim % 3:
            raise ValueError(f"embed_dim {embed_dim} must be divisible by 3 ([sin, cos, sin] features).")
        self.embed_dim = embed_dim
        self.image_embedding_size = tuple(image_embedding_size)
        self.input_image_size = tuple(input_image_size)
        self.mask_input_size = tuple(4 * s for s in image_embedding_size)
        self.pe_layer = PositionEmbeddingRandom3D(embed_dim // 3)
        self.box_embeddings = bool(box_embeddings)
        # negative, positive[, box corner 0, box corner 1]
        self.point_embeddings = nn.ModuleList([nn.Embedding(1, embed_dim) for _ in range(4 if box_embeddings else 2)])
        self.not_a_point_embed = nn.Embedding(1, embed_dim)
        self.mask_downscaling = nn.Sequential(
            nn.Conv3d(1, mask_in_chans // 4, kernel_size=2, stride=2),
            LayerNorm3d(mask_in_chans // 4),
            nn.GELU(),
            nn.Conv3d(mask_in_chans // 4, mask_in_chans, kernel_size=2, stride=2),
            LayerNorm3d(mask_in_chans),
            nn.GELU(),
            nn.Conv3d(mask_in_chans, embed_dim, kernel_size=1),
        )
        self.no_mask_embed = nn.Embedding(1, embed_dim)
        if num_class_prompts < 0:
            raise ValueError(f"num_class_prompts must be >= 0, got {num_class_prompts}.")
        self.num_class_prompts = int(num_class_prompts)
        if self.num_class_prompts:
            self.class_embeddings = nn.Embedding(self.num_class_prompts, embed_dim)

    def check_class_ids(self, class_ids: torch.Tensor) -> None:
        """Raise a ``ValueError`` unless ``class_ids`` is ``(K,)`` with ids this encoder was built for.

        Args:
            class_ids: the class ids of ``K`` objects.
        """
        if not self.num_class_prompts:
            raise ValueError("class prompts need a network built with num_class_prompts > 0 (this one has none).")
        if class_ids.ndim != 1:
            raise ValueError(f"class_ids must have shape (K,), got {tuple(class_ids.shape)}.")
        if len(class_ids) and (int(class_ids.min()) < 0 or int(class_ids.max()) >= self.num_class_prompts):
            raise ValueError(
                f"class ids must be in [0, {self.num_class_prompts - 1}] (the classes this network was trained for), "
                f"got {sorted(set(class_ids.tolist()))}."
            )

    def get_dense_pe(self) -> torch.Tensor:
        """Positional encoding of the image embedding grid, ``(1, embed_dim, *image_embedding_size)``."""
        return self.pe_layer(self.image_embedding_size).unsqueeze(0)

    def _embed_points(self, points: torch.Tensor, labels: torch.Tensor, pad: bool) -> torch.Tensor:
        points = points + 0.5  # voxel centres
        if pad:  # one padding point ends the points when there is no box (the reference's rule)
            points = torch.cat([points, points.new_zeros(points.shape[0], 1, 3)], dim=1)
            labels = torch.cat([labels, -labels.new_ones(labels.shape[0], 1)], dim=1)
        embedding = self.pe_layer.forward_with_coords(points, self.input_image_size)
        labels = labels[..., None]
        embedding = torch.where(labels == -1, self.not_a_point_embed.weight, embedding)
        embedding = embedding + (labels == 0) * self.point_embeddings[0].weight
        return embedding + (labels == 1) * self.point_embeddings[1].weight

    def _embed_boxes(self, boxes: torch.Tensor) -> torch.Tensor:
        corners = boxes.reshape(-1, 2, 3) + 0.5  # voxel centres, as points
        embedding = self.pe_layer.forward_with_coords(corners, self.input_image_size)
        return torch.stack(
            [
                embedding[:, 0] + self.point_embeddings[2].weight[0],
                embedding[:, 1] + self.point_embeddings[3].weight[0],
            ],
            dim=1,
        )

    def check_boxes(self, boxes: torch.Tensor) -> None:
        """Raise a ``ValueError`` unless this encoder embeds boxes and ``boxes`` is ``(K, 6)`` or ``(K, 2, 3)``.

        Args:
            boxes: two corners per object, in voxel indices of the network input.
        """
        if not self.box_embeddings:
            raise ValueError(
                "box prompts are not supported by this network: they need a checkpoint with box embeddings (four "
                "prompt_encoder.point_embeddings, the CVPR 2025 ones); give the box as a click at its centre."
            )
        if tuple(boxes.shape[1:]) not in ((6,), (2, 3)):
            raise ValueError(f"boxes must have shape (K, 6) or (K, 2, 3), got {tuple(boxes.shape)}.")

    def forward(
        self,
        points: tuple[torch.Tensor, torch.Tensor] | None,
        boxes: torch.Tensor | None = None,
        masks: torch.Tensor | None = None,
        class_ids: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Embed the prompts of ``K`` objects.

        Args:
            points: ``(coords (K, N, 3), labels (K, N))`` in voxel indices of the network input, or ``None``.
            boxes: ``(K, 6)`` or ``(K, 2, 3)`` two corners per object in voxel indices of the network input (needs
                ``box_embeddings``), or ``None``.
            masks: low-resolution mask logits ``(K, 1, *mask_input_size)``, or ``None`` for ``no_mask_embed``.
            class_ids: ``(K,)`` class ids in ``[0, num_class_prompts)``, or ``None``; each adds one sparse token.

        Returns:
            Sparse embeddings ``(K, N + 1 [+ 1], embed_dim)`` without a box, ``(K, N + 2 [+ 1], embed_dim)`` with one
            (``(K, 0, embed_dim)`` without points, boxes and classes) and dense embeddings
            ``(K, embed_dim, *image_embedding_size)``.
        """
        batch = 1
        if points is not None:
            check_point_prompts(points[0], points[1], allowed_labels=(-1, 0, 1))
            batch = points[0].shape[0]
        if boxes is not None:
            self.check_boxes(boxes)
            if points is not None and boxes.shape[0] != batch:
                raise ValueError(f"{boxes.shape[0]} boxes but the points have {batch} objects.")
            batch = boxes.shape[0]
        if masks is not None:
            expected = (1, *self.mask_input_size)
            if masks.ndim != 5 or tuple(masks.shape[1:]) != expected:
                raise ValueError(
                    f"mask prompt must have shape (K, {', '.join(map(str, expected))}), got {tuple(masks.shape)}."
                )
            if (points is not None or boxes is not None) and masks.shape[0] != batch:
                given = "points" if points is not None else "boxes"
                raise ValueError(f"mask prompt has {masks.shape[0]} objects but the {given} have {batch}.")
            batch = masks.shape[0]
        if class_ids is not None:
            self.check_class_ids(class_ids)
            if (points is not None or boxes is not None or masks is not None) and class_ids.shape[0] != batch:
                raise ValueError(f"{class_ids.shape[0]} class ids but the other prompts have {batch} objects.")
            batch = class_ids.shape[0]
        weight = self.no_mask_embed.weight
        if points is None:
            sparse = weight.new_zeros(batch, 0, self.embed_dim)
        else:
            sparse = self._embed_points(points[0].to(weight.dtype), points[1], pad=boxes is None)
        if boxes is not None:
            sparse = torch.cat([sparse, self._embed_boxes(boxes.to(weight.dtype))], dim=1)
        if class_ids is not None:
            sparse = torch.cat([sparse, self.class_embeddings(class_ids.long())[:, None]], dim=1)
        if masks is None:
            dense = weight.reshape(1, -1, 1, 1, 1).expand(batch, -1, *self.image_embedding_size)
        else:
            dense = self.mask_downscaling(masks)
        return sparse, dense
