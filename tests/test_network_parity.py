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
"""The network reproduces the reference's parity vectors (PARITY.md) for calls A-D, in both attention forms."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import parity_image, recipe_rule

ENCODER_TOL = {"atol": 1e-4, "rtol": 1e-4}
DECODER_TOL = {"atol": 2e-4, "rtol": 1e-3}
CALLS = ("A", "B", "C", "D")


def assert_close(actual: torch.Tensor, expected: np.ndarray, tol: dict, name: str) -> None:
    actual = actual.detach().float().numpy()
    assert actual.shape == expected.shape, f"{name}: shape {actual.shape} != {expected.shape}"
    np.testing.assert_allclose(actual, expected, err_msg=name, **tol)


def test_weight_recipe_matches_reference_sums(parity, parity_weights):
    keys = [str(k) for k in parity["weights_keys"]]
    assert sorted(parity_weights) == keys
    for key, total, abstotal, rule in zip(
        keys, parity["weights_sum"], parity["weights_abssum"], parity["weights_rule"]
    ):
        w = parity_weights[key].double()
        assert recipe_rule(key, tuple(w.shape))[0] == str(rule), key
        assert abs(w.sum().item() - total) <= 1e-6 * abstotal, key
        assert abs(w.abs().sum().item() - abstotal) <= 1e-6 * abstotal, key


def test_input_image_matches_reference(parity):
    x = parity_image()
    np.testing.assert_array_equal(x[..., ::8, ::8, ::8].numpy(), parity["input_image_sub"])
    assert x.double().sum().item() == pytest.approx(float(parity["input_image_sum"]), rel=1e-9)
    assert x.double().pow(2).sum().item() == pytest.approx(float(parity["input_image_sumsq"]), rel=1e-9)


def run_encoder(model, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Encoder outputs plus the intermediates the vectors pin (patch embedding, every block)."""
    captured: dict[str, torch.Tensor] = {}
    encoder = model.image_encoder
    hooks = [encoder.patch_embed.register_forward_hook(lambda m, i, o: captured.__setitem__("enc_patch_embed", o))]
    for b, block in enumerate(encoder.blocks):
        hooks.append(block.register_forward_hook(lambda m, i, o, b=b: captured.__setitem__(f"block{b:02d}", o)))
    try:
        with torch.no_grad():
            captured["image_embeddings"] = model.encode(x)
    finally:
        for h in hooks:
            h.remove()
    return captured


@pytest.fixture(scope="module")
def encoder_outputs(parity_model):
    return run_encoder(parity_model, parity_image())


def check_encoder(out: dict[str, torch.Tensor], parity: dict[str, np.ndarray]) -> None:
    assert_close(out["enc_patch_embed"], parity["enc_patch_embed"], ENCODER_TOL, "enc_patch_embed")
    for b in range(12):
        sub = out[f"block{b:02d}"][:, ::2, ::2, ::2, ::8]
        assert_close(sub, parity[f"enc_block{b:02d}_sub"], ENCODER_TOL, f"enc_block{b:02d}_sub")
    for b in (0, 2, 11):
        assert_close(out[f"block{b:02d}"], parity[f"enc_block{b:02d}_full"], ENCODER_TOL, f"enc_block{b:02d}_full")
    assert_close(out["image_embeddings"], parity["image_embeddings"], ENCODER_TOL, "image_embeddings")


def test_encoder_exact_form_matches_reference(encoder_outputs, parity):
    check_encoder(encoder_outputs, parity)


@pytest.mark.slow
def test_encoder_padded_form_matches_reference(parity_model, parity):
    parity_model.image_encoder.set_padded_attention(True)
    try:
        out = run_encoder(parity_model, parity_image())
    finally:
        parity_model.image_encoder.set_padded_attention(False)
    check_encoder(out, parity)


def test_dense_pe_matches_reference(parity_model, parity):
    assert_close(parity_model.prompt_encoder.get_dense_pe(), parity["dense_pe"], ENCODER_TOL, "dense_pe")


def reference_call(model, emb: torch.Tensor, call: str, parity: dict[str, np.ndarray], low: dict[str, torch.Tensor]):
    """PARITY.md section 3, with the decoder's intermediates captured."""
    click1, click2 = torch.from_numpy(parity["click1"]), torch.from_numpy(parity["click2"])
    points = {
        "A": (click1[None, None], torch.tensor([[1]])),
        "B": (torch.stack([click1, click2])[None], torch.tensor([[1, 0]])),
        "C": (click1[None, None], torch.tensor([[1]])),
        "D": None,
    }[call]
    masks = {"A": torch.zeros(1, 1, 32, 32, 32), "B": low.get("A"), "C": None, "D": low.get("B")}[call]
    captured: dict[str, torch.Tensor] = {}
    decoder = model.mask_decoder

    def keep_transformer(module, inputs, outputs):
        captured["dec_tokens_out"], captured["dec_image_tokens_out"] = outputs

    hooks = [
        decoder.transformer.register_forward_hook(keep_transformer),
        decoder.output_upscaling.register_forward_hook(lambda m, i, o: captured.__setitem__("dec_upscaled", o)),
    ]
    try:
        with torch.no_grad():
            sparse, dense = model.prompt_encoder(points=points, boxes=None, masks=masks)
            low_res, iou = decoder(
                image_embeddings=emb,
                image_pe=model.prompt_encoder.get_dense_pe(),
                sparse_prompt_embeddings=sparse,
                dense_prompt_embeddings=dense,
                multimask_output=call == "C",
            )
    finally:
        for h in hooks:
            h.remove()
    up = F.interpolate(low_res, size=(128, 128, 128), mode="trilinear", align_corners=False)
    return {"sparse": sparse, "dense": dense, "lowres_logits": low_res, "iou_pred": iou, "up": up, **captured}


@pytest.fixture(scope="module")
def decoder_outputs(parity_model, encoder_outputs, parity):
    emb, low, outputs = encoder_outputs["image_embeddings"], {}, {}
    for call in CALLS:
        outputs[call] = reference_call(parity_model, emb, call, parity, low)
        low[call] = outputs[call]["lowres_logits"]
    return outputs


@pytest.mark.parametrize("call", CALLS)
def test_prompt_encoder_matches_reference(decoder_outputs, parity, call):
    out = decoder_outputs[call]
    assert_close(out["sparse"], parity[f"call{call}_sparse"], ENCODER_TOL, f"call{call}_sparse")
    assert_close(out["dense"], parity[f"call{call}_dense"], ENCODER_TOL, f"call{call}_dense")


@pytest.mark.parametrize("call", CALLS)
def test_mask_decoder_matches_reference(decoder_outputs, parity, call):
    out = decoder_outputs[call]
    for name in ("lowres_logits", "iou_pred"):
        assert_close(out[name], parity[f"call{call}_{name}"], DECODER_TOL, f"call{call}_{name}")
    up_sub = out["up"][..., 1::4, 1::4, 1::4]
    assert_close(up_sub, parity[f"call{call}_up_logits_sub"], DECODER_TOL, f"call{call}_up_logits_sub")
    if call == "A":
        assert_close(out["dec_tokens_out"], parity["callA_dec_tokens_out"], DECODER_TOL, "dec_tokens_out")
        assert_close(out["dec_image_tokens_out"], parity["callA_dec_image_tokens_out"], DECODER_TOL, "dec_image")
        upscaled_sub = out["dec_upscaled"][..., ::2, ::2, ::2]
        assert_close(upscaled_sub, parity["callA_dec_upscaled_sub"], DECODER_TOL, "dec_upscaled_sub")


@pytest.mark.parametrize("call", CALLS)
def test_binary_masks_match_reference(decoder_outputs, parity, call):
    """Masks are identical except where the reference logit itself is within 1e-3 of the threshold."""
    mask = (decoder_outputs[call]["up"] > 0).numpy().ravel()
    expected = np.unpackbits(parity[f"call{call}_up_mask_packbits"])[: mask.size].astype(bool)
    reference_low = torch.from_numpy(parity[f"call{call}_lowres_logits"])
    reference_up = F.interpolate(reference_low, size=(128, 128, 128), mode="trilinear", align_corners=False)
    differ = mask != expected
    assert np.all(np.abs(reference_up.numpy().ravel()[differ]) < 1e-3), f"call {call}: {differ.sum()} voxels differ"
    assert expected.sum() > 1000, "the reference mask should not be empty"
