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
"""The high-level API (encode / decode / forward), its input checks, the two attention forms, and the reference."""

from __future__ import annotations

import pytest
import torch

from scripts.networks import SAMMed3D

SMALL = {"encoder_embed_dim": 96, "encoder_depth": 4, "encoder_num_heads": 4, "encoder_global_attn_indexes": (1, 3)}


@pytest.fixture(scope="module")
def small_model() -> SAMMed3D:
    torch.manual_seed(0)
    model = SAMMed3D(**SMALL).eval()
    with torch.no_grad():  # non-trivial relative-position tables and biases, so the quirks matter
        for name, p in model.named_parameters():
            if "rel_pos" in name or name.endswith("bias"):
                p.normal_(0, 0.5)
    return model


@pytest.fixture(scope="module")
def image() -> torch.Tensor:
    return torch.randn(1, 1, 128, 128, 128, generator=torch.Generator().manual_seed(1))


def test_exact_and_padded_attention_agree(small_model, image):
    with torch.no_grad():
        exact = small_model.encode(image)
        small_model.image_encoder.set_padded_attention(True)
        padded = small_model.encode(image)
        small_model.image_encoder.set_padded_attention(False)
    assert exact.shape == (1, 384, 8, 8, 8)
    torch.testing.assert_close(exact, padded, atol=2e-5, rtol=1e-5)


def test_exact_and_padded_attention_agree_in_float64(small_model, image):
    model = SAMMed3D(**SMALL).double().eval()
    model.load_state_dict(small_model.state_dict())
    with torch.no_grad():
        exact = model.encode(image.double())
        model.image_encoder.set_padded_attention(True)
        padded = model.encode(image.double())
    torch.testing.assert_close(exact, padded, atol=1e-11, rtol=1e-11)


def test_decode_many_objects_equals_one_at_a_time(small_model, image):
    points = torch.tensor([[[10.0, 20, 30], [60, 60, 60]], [[100, 5, 70], [0, 0, 127]], [[64, 64, 64], [1, 2, 3]]])
    labels = torch.tensor([[1, 0], [1, 1], [1, -1]])
    masks = torch.randn(3, 1, 32, 32, 32)
    with torch.no_grad():
        emb = small_model.encode(image)
        together, iou = small_model.decode(emb, points, labels, masks)
        alone = [small_model.decode(emb, points[i : i + 1], labels[i : i + 1], masks[i : i + 1])[0] for i in range(3)]
    assert together.shape == (3, 1, 32, 32, 32) and iou.shape == (3, 1)
    torch.testing.assert_close(together, torch.cat(alone), atol=1e-5, rtol=1e-5)


def test_forward_with_image_alone_gives_full_resolution_logits(small_model):
    with torch.no_grad():
        out = small_model(torch.randn(2, 1, 128, 128, 128))
    assert out.shape == (2, 1, 128, 128, 128) and out.dtype == torch.float32


def test_forward_with_points_equals_encode_decode_upsample(small_model, image):
    points, labels = torch.tensor([[[70.0, 50, 60]]]), torch.tensor([[1]])
    with torch.no_grad():
        direct = small_model(image, points, labels)
        low, _ = small_model.decode(small_model.encode(image), points, labels)
    torch.testing.assert_close(direct, small_model.upsample(low))


def test_multimask_output_has_three_masks(small_model, image):
    with torch.no_grad():
        low, iou = small_model.decode(small_model.encode(image), torch.zeros(1, 1, 3), torch.ones(1, 1), None, True)
    assert low.shape == (1, 3, 32, 32, 32) and iou.shape == (1, 3)


def test_cpu_autocast_runs_close_to_float32(small_model, image):
    with torch.no_grad():
        reference = small_model(image, torch.tensor([[[64.0, 64, 64]]]), torch.tensor([[1]]))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            mixed = small_model(image, torch.tensor([[[64.0, 64, 64]]]), torch.tensor([[1]]))
    assert mixed.dtype in (torch.bfloat16, torch.float32)
    assert (mixed.float() - reference).abs().mean() < 0.1 * reference.abs().mean()


@pytest.mark.parametrize(
    "shape", [(1, 128, 128, 128), (1, 1, 64, 64, 64), (1, 2, 128, 128, 128), (1, 1, 128, 128, 127)]
)
def test_encoder_rejects_wrong_image_shape(small_model, shape):
    with pytest.raises(ValueError, match=r"image must have shape \(B, 1, 128, 128, 128\)"):
        small_model.encode(torch.zeros(shape))


@pytest.mark.parametrize(
    "points, labels, message",
    [
        (torch.zeros(1, 2, 3), torch.ones(1, 3), r"point labels must have shape \(K, N\) = \(1, 2\)"),
        (torch.zeros(1, 2), torch.ones(1, 2), r"points must have shape \(K, N, 3\)"),
        (torch.zeros(1, 2, 2), torch.ones(1, 2), r"points must have shape \(K, N, 3\)"),
        (torch.zeros(1, 2, 3), torch.tensor([[1, 2]]), r"point labels must be in \[-1, 0, 1\], got \[2\]"),
    ],
)
def test_decoder_rejects_bad_points(small_model, points, labels, message):
    emb = torch.zeros(1, 384, 8, 8, 8)
    with pytest.raises(ValueError, match=message):
        small_model.decode(emb, points, labels)


def test_decoder_rejects_bad_mask_prompt(small_model):
    emb = torch.zeros(1, 384, 8, 8, 8)
    with pytest.raises(ValueError, match=r"mask prompt must have shape \(K, 1, 32, 32, 32\)"):
        small_model.decode(emb, mask_prompt=torch.zeros(1, 1, 128, 128, 128))
    with pytest.raises(ValueError, match="mask prompt has 2 objects but the points have 1"):
        small_model.decode(emb, torch.zeros(1, 1, 3), torch.ones(1, 1), torch.zeros(2, 1, 32, 32, 32))
    with pytest.raises(ValueError, match="points and point_labels must be given together"):
        small_model.decode(emb, torch.zeros(1, 1, 3))
    with pytest.raises(ValueError, match="box prompts are not supported"):
        small_model.prompt_encoder(points=None, boxes=torch.zeros(1, 6))


def test_matches_medim_reference_on_random_weights():
    """The reference package (a test-only oracle) and our modules agree on its own random weights and inputs."""
    from medim.models.sam_med3d import build_sam3D_vit_b_ori

    torch.manual_seed(3)
    reference = build_sam3D_vit_b_ori().eval()
    ours = SAMMed3D().eval()
    ours.load_state_dict(reference.state_dict(), strict=True)
    image = torch.randn(1, 1, 128, 128, 128)
    points, labels = torch.tensor([[[30.0, 90, 12], [77, 3, 64], [127, 127, 0]]]), torch.tensor([[1, 0, 1]])
    masks = torch.randn(1, 1, 32, 32, 32)
    with torch.no_grad():
        emb_ref = reference.image_encoder(image)
        sparse, dense = reference.prompt_encoder(points=(points, labels), boxes=None, masks=masks)
        low_ref, iou_ref = reference.mask_decoder(emb_ref, reference.prompt_encoder.get_dense_pe(), sparse, dense)
        emb = ours.encode(image)
        low, iou = ours.decode(emb, points, labels, masks)
    torch.testing.assert_close(emb, emb_ref, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(low, low_ref, atol=2e-4, rtol=1e-3)
    torch.testing.assert_close(iou, iou_ref, atol=2e-4, rtol=1e-3)
