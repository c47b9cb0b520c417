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
"""Box prompts reproduce the ``CVPR25_3DFM`` branch's prompt encoder and decoder (tests/data/segfm/README.md, A),
and both checkpoint kinds (two or four point embeddings) load strictly."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
import torch
from conftest import DATA, recipe_rule, recipe_state_dict

VECTORS = DATA / "segfm" / "box_prompt_vectors.npz"
SPARSE_TOL = {"atol": 1e-5, "rtol": 1e-5}
DENSE_TOL = {"atol": 1e-4, "rtol": 1e-4}
RANDOM_TOL = {"atol": 1e-4, "rtol": 1e-3}
FULL_TOL = {"atol": 2e-4, "rtol": 1e-3}
CASES = ("box", "box_pos", "box_pos_neg", "box_pos_multimask", "box_batch2")
BOX_KEYS = ("prompt_encoder.point_embeddings.2.weight", "prompt_encoder.point_embeddings.3.weight")


@pytest.fixture(scope="module")
def vectors() -> dict[str, np.ndarray]:
    with np.load(VECTORS) as f:
        return {k: f[k] for k in f.files}


@pytest.fixture(scope="module")
def box_model():
    from scripts.networks import SAMMed3D

    model = SAMMed3D(box_embeddings=True).eval()
    model.load_state_dict(recipe_state_dict({k: tuple(v.shape) for k, v in model.state_dict().items()}), strict=True)
    return model


def _prompts(vectors: dict, case: str) -> dict:
    points = vectors.get(f"{case}__in_points")
    return {
        "points": (
            None if points is None else (torch.from_numpy(points), torch.from_numpy(vectors[f"{case}__in_labels"]))
        ),
        "boxes": torch.from_numpy(vectors[f"{case}__in_boxes"]),
    }


def _random_embedding(vectors: dict) -> torch.Tensor:
    seed = zlib.crc32(b"segfm.box_vectors.image_embeddings")
    assert seed == int(vectors["imgemb_random_seed"])
    emb = np.random.RandomState(seed).standard_normal((1, 384, 8, 8, 8)).astype(np.float32)
    np.testing.assert_array_equal(emb[:, ::16, ::2, ::2, ::2], vectors["imgemb_random_sub"])
    return torch.from_numpy(emb)


def _mask_prompt(case: str, path: dict) -> torch.Tensor | None:
    """The case table's mask prompt: none, zeros, or the same path's ``box_pos`` logits."""
    if case == "box_pos":
        return torch.zeros(1, 1, 32, 32, 32)
    if case == "box_pos_neg":
        return path["box_pos"]
    return None


def test_recipe_weights_match_branch_sums(vectors, box_model):
    keys = [str(k) for k in vectors["weights_keys"]]
    state = box_model.state_dict()
    assert sorted(state) == keys and sorted(str(k) for k in vectors["extra_keys_vs_turbo"]) == list(BOX_KEYS)
    for key, total, abstotal, rule in zip(
        keys, vectors["weights_sum"], vectors["weights_abssum"], vectors["weights_rule"]
    ):
        w = state[key].double()
        assert recipe_rule(key, tuple(w.shape))[0] == str(rule), key
        assert abs(w.sum().item() - total) <= 1e-6 * abstotal, key


@pytest.mark.parametrize("case", CASES)
def test_prompt_encoder_matches_branch(vectors, box_model, case):
    prompts = _prompts(vectors, case)
    masks = torch.zeros(1, 1, 32, 32, 32) if case == "box_pos" else None
    if case == "box_pos_neg":
        masks = torch.from_numpy(vectors["R_box_pos__lowres_logits"])  # only the dense part, checked by its sums
    with torch.no_grad():
        sparse, dense = box_model.prompt_encoder(points=prompts["points"], boxes=prompts["boxes"], masks=masks)
    np.testing.assert_allclose(sparse.detach().numpy(), vectors[f"{case}__sparse"], err_msg=case, **SPARSE_TOL)
    if f"{case}__dense_const" in vectors:
        expected = np.broadcast_to(vectors[f"{case}__dense_const"][..., None, None, None], dense.shape)
        np.testing.assert_allclose(dense.detach().numpy(), expected, err_msg=case, **DENSE_TOL)


@pytest.mark.parametrize("path_name", ["R", "F"])
def test_decoder_with_boxes_matches_branch(vectors, box_model, parity, path_name):
    """Decoder logits and IoU on the seeded random embedding (R) and on the full model's embedding (F)."""
    embedding = _random_embedding(vectors) if path_name == "R" else torch.from_numpy(parity["image_embeddings"])
    tol = RANDOM_TOL if path_name == "R" else FULL_TOL
    cases = CASES if path_name == "R" else ("box", "box_pos", "box_pos_neg")
    path: dict[str, torch.Tensor] = {}
    for case in cases:
        prompts = _prompts(vectors, case)
        points, labels = prompts["points"] or (None, None)
        mask_prompt = _mask_prompt(case, path)
        with torch.no_grad():
            if mask_prompt is None:  # SAMMed3D.decode feeds zeros for "no mask": call the parts as the branch does
                sparse, dense = box_model.prompt_encoder(points=prompts["points"], boxes=prompts["boxes"], masks=None)
                low, iou = box_model.mask_decoder(
                    embedding, box_model.prompt_encoder.get_dense_pe(), sparse, dense, case == "box_pos_multimask"
                )
            else:
                low, iou = box_model.decode(embedding, points, labels, mask_prompt, boxes=prompts["boxes"])
        path[case] = low
        np.testing.assert_allclose(low.numpy(), vectors[f"{path_name}_{case}__lowres_logits"], err_msg=case, **tol)
        np.testing.assert_allclose(iou.numpy(), vectors[f"{path_name}_{case}__iou_pred"], err_msg=case, **tol)
    if path_name == "R":
        with torch.no_grad():
            _, dense = box_model.prompt_encoder(points=None, boxes=None, masks=path["box_pos"])
        np.testing.assert_allclose(dense[:, ::4].numpy(), vectors["box_pos_neg__dense_sub"], **DENSE_TOL)
        assert dense.double().sum().item() == pytest.approx(float(vectors["box_pos_neg__dense_sum"]), rel=1e-5)


def test_box_without_box_embeddings_is_refused(parity_model):
    with pytest.raises(ValueError, match="box embeddings"):
        parity_model.prompt_encoder(points=None, boxes=torch.zeros(1, 6))


@pytest.mark.parametrize("box_embeddings", [False, True])
def test_both_checkpoint_kinds_load_strictly(tmp_path, box_embeddings, caplog):
    from scripts.networks import SAMMed3D
    from scripts.networks.checkpoint import network_config
    from scripts.weights import load_network

    state = recipe_state_dict(
        {k: tuple(v.shape) for k, v in SAMMed3D(box_embeddings=box_embeddings).state_dict().items()}
    )
    assert network_config(state)["box_embeddings"] is box_embeddings
    torch.save({"model_state_dict": state, "epoch": 3}, tmp_path / "ckpt.pth")  # the official container
    with caplog.at_level("INFO", logger="scripts.weights"):
        network = load_network(str(tmp_path), weights=str(tmp_path / "ckpt.pth"))
    assert network.box_embeddings is box_embeddings
    assert all(torch.equal(v, state[k]) for k, v in network.state_dict().items())
    way = "embedded (CVPR25_3DFM)" if box_embeddings else "a click at the centre, mask clipped"
    assert f"network: the released sizes; box prompts: {way}" in caplog.text  # both kinds: the released sizes


def test_other_key_sets_are_refused_naming_the_keys(tmp_path):
    from scripts.networks import SAMMed3D
    from scripts.weights import load_network

    state = recipe_state_dict({k: tuple(v.shape) for k, v in SAMMed3D(box_embeddings=True).state_dict().items()})
    del state[BOX_KEYS[1]]  # three point embeddings: neither kind
    state["prompt_encoder.extra.weight"] = torch.zeros(2)
    torch.save(state, tmp_path / "odd.pth")
    with pytest.raises(ValueError) as raised:
        load_network(str(tmp_path), weights=str(tmp_path / "odd.pth"))
    message = str(raised.value)
    assert "\n" not in message and "missing" in message and "unexpected" in message
    assert "prompt_encoder.extra.weight" in message and BOX_KEYS[1] in message
