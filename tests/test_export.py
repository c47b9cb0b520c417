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
"""TorchScript export (encoder.ts, decoder.ts, ckpt_export's model.ts) against the eager network; the overlays."""

from __future__ import annotations

import inspect
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import monai.networks
import nibabel as nib
import numpy as np
import pytest
import torch
from conftest import BUNDLE, parity_image
from monai.bundle import ConfigParser, ConfigWorkflow

from scripts.errors import user_error
from scripts.export import compare_with_eager, device_constants, export
from scripts.networks import SAMMed3D
from scripts.networks.torchscript import EXPORT_INFO, TorchScriptSAMMed3D

CONFIGS = BUNDLE / "configs"
ATOL = 1e-5  # the traces run the eager network's operations: differences are float rounding at most
ONE = torch.ones(1, 1, dtype=torch.long)


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Iterator[tuple[SAMMed3D, Path]]:
    """An untrained full-size network, its ``models/model.pt`` and what ``python -m scripts.export`` makes of it."""
    models = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    network = SAMMed3D().eval()
    torch.save(network.state_dict(), models / "model.pt")
    # The command line's function: loads model.pt strictly, traces, saves (its own check is tested separately).
    paths = export(ckpt_dir=str(models), device="cpu", verify=False)
    assert paths == (str(models / "encoder.ts"), str(models / "decoder.ts"))
    yield network, models
    shutil.rmtree(models)  # 0.8 GB: pytest keeps the temporary folders of the last runs


@pytest.fixture(scope="module")
def scripted(exported) -> TorchScriptSAMMed3D:
    _, models = exported
    return TorchScriptSAMMed3D(models / "encoder.ts", models / "decoder.ts", map_location="cpu").eval()


@pytest.fixture(scope="module")
def window() -> torch.Tensor:
    """A structured 128^3 window (the parity image), z-normalised as the inference does."""
    image = parity_image()
    return (image - image.mean()) / image.std()


@pytest.fixture(scope="module")
def eager_embedding(exported, window) -> torch.Tensor:
    network, _ = exported
    with torch.no_grad():
        return network.encode(window)


def read_export_info(path: Path) -> dict:
    extra = {EXPORT_INFO: ""}
    torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    return json.loads(extra[EXPORT_INFO])


def test_export_writes_both_parts_with_their_description(exported):
    _, models = exported
    encoder, decoder = read_export_info(models / "encoder.ts"), read_export_info(models / "decoder.ts")
    assert encoder["part"] == "encoder" and decoder["part"] == "decoder"
    for info in (encoder, decoder):
        assert info["img_size"] == 128 and info["mask_input_size"] == [32, 32, 32] and info["traced_on"] == "cpu"
    # The decoder is device-portable; the encoder's relative-position index is created on the tracing device.
    assert device_constants(models / "decoder.ts") == []
    assert {c.split(": ")[-1] for c in device_constants(models / "encoder.ts")} == {'torch.device("cpu")'}


def test_encoder_matches_the_eager_network(scripted, window, eager_embedding):
    with torch.no_grad():
        embedding = scripted.encode(window)
    assert embedding.shape == (1, 384, 8, 8, 8)
    torch.testing.assert_close(embedding, eager_embedding, rtol=0, atol=ATOL)


@pytest.mark.parametrize(
    "num_objects, num_clicks, shared_embedding, with_mask",
    [(1, 1, True, False), (3, 4, True, True), (2, 2, False, True), (2, 0, True, True), (1, 0, True, False)],
    ids=["1x1", "3x4-mask", "per-object-embeddings", "mask-only", "image-only"],
)
def test_decoder_matches_the_eager_network(
    exported, scripted, eager_embedding, num_objects, num_clicks, shared_embedding, with_mask
):
    """Other prompt sizes than the trace example (1 object, 2 clicks), padding labels, with and without masks."""
    network, _ = exported
    generator = torch.Generator().manual_seed(num_objects * 10 + num_clicks)
    embeddings = eager_embedding if shared_embedding else eager_embedding.expand(num_objects, -1, -1, -1, -1) * 0.9
    points = labels = None
    if num_clicks:
        points = torch.rand(num_objects, num_clicks, 3, generator=generator) * 127
        labels = torch.randint(-1, 2, (num_objects, num_clicks), generator=generator)
        labels[:, 0] = 1
    mask = torch.randn(num_objects, 1, 32, 32, 32, generator=generator) * 4 if with_mask else None
    with torch.no_grad():
        expected, expected_iou = network.decode(embeddings, points, labels, mask)
        low_res, iou = scripted.decode(embeddings, points, labels, mask)
        torch.testing.assert_close(low_res, expected, rtol=0, atol=ATOL)
        torch.testing.assert_close(iou, expected_iou, rtol=0, atol=ATOL)
        torch.testing.assert_close(scripted.upsample(low_res), network.upsample(expected), rtol=0, atol=ATOL)
    assert low_res.shape == (num_objects, 1, 32, 32, 32)
    assert 0.01 < (low_res > 0).float().mean() < 0.99, "a degenerate mask would hide differences at the threshold"


def test_compare_with_eager_catches_a_different_decoder(exported, scripted):
    network, _ = exported
    errors = compare_with_eager(network, scripted)  # decoders only: a random image embedding
    assert set(errors) == {"decoder", "iou", "mask_only", "upsample"} and max(errors.values()) <= 1e-4
    bias = network.mask_decoder.output_hypernetworks_mlps[0].layers[-1].bias
    original = bias.detach().clone()
    try:
        with torch.no_grad():
            bias += 0.01
        with pytest.raises(RuntimeError, match="decoder: the exported output differs"):
            compare_with_eager(network, scripted)
    finally:
        with torch.no_grad():
            bias.copy_(original)  # the other tests compare with these weights bit for bit


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda m, e: m.encode(torch.zeros(2, 1, 128, 128, 128)), "takes one window"),
        (lambda m, e: m.decode(e, torch.zeros(1, 2, 3)), "points and point_labels must be given together"),
        (lambda m, e: m.decode(e, torch.zeros(1, 1, 2), ONE), "points must have shape"),
        (lambda m, e: m.decode(e, torch.zeros(1, 1, 3), ONE * 2), "point labels must be in"),
        (lambda m, e: m.decode(e, torch.zeros(1, 1, 3), ONE, torch.zeros(1, 1, 16, 16, 16)), "mask prompt"),
        (lambda m, e: m.decode(e.expand(2, -1, -1, -1, -1), torch.zeros(3, 1, 3), ONE.expand(3, 1)), "expected 1"),
        (lambda m, e: m.decode(e, torch.zeros(1, 1, 3), ONE, multimask_output=True), "single-mask"),
    ],
    ids=["batch", "labels-missing", "points-shape", "label-value", "mask-shape", "embedding-batch", "multimask"],
)
def test_torchscript_network_checks_its_inputs(scripted, eager_embedding, call, message):
    """Tracing drops the eager modules' input checks: the wrapper keeps them."""
    with pytest.raises(ValueError, match=message):
        call(scripted, eager_embedding)


def test_missing_or_swapped_files_are_refused(exported, tmp_path):
    _, models = exported
    with pytest.raises(FileNotFoundError, match="python -m scripts.export"):
        TorchScriptSAMMed3D(tmp_path / "encoder.ts", models / "decoder.ts")
    with pytest.raises(ValueError, match="is not a SAM-Med3D encoder"):
        TorchScriptSAMMed3D(models / "decoder.ts", models / "decoder.ts")


def write_image(path: Path) -> str:
    """A small CT-like volume (two bright blobs), smaller than one window, with a flipped anisotropic affine."""
    i, j, k = np.meshgrid(*(np.arange(n, dtype=np.float32) for n in (70, 60, 50)), indexing="ij")
    blob = lambda c, r: np.exp(-sum(((x - m) / s) ** 2 for x, m, s in zip((i, j, k), c, r)))  # noqa: E731
    image = -800 + 900 * blob((30, 28, 25), (12, 10, 9)) + 300 * blob((52, 40, 20), (6, 7, 6))
    affine = np.diag([-1.5, 1.5, 2.0, 1.0])
    affine[:3, 3] = [100, -50, 20]
    nib.save(nib.Nifti1Image(image.astype(np.float32), affine), str(path))
    return str(path)


def run_inference(tmp_path: Path, configs: list[str], out: str, models: Path) -> np.ndarray:
    """One in-process ``monai.bundle run`` of the merged configs on the small image; the label map written."""
    # Both objects' positive clicks are centred on (30, 28, 25): one window, one encoder pass.
    request = {
        "image": write_image(tmp_path / "image.nii.gz"),
        "objects": {
            "big": {"points": [[30, 28, 25], [52, 40, 20]], "point_labels": [1, 0], "label": 3},
            "small": {"points": [[26, 24, 22], [34, 32, 28]], "point_labels": [1, 1], "label": 7},
        },
    }
    workflow = ConfigWorkflow(
        workflow_type="infer",
        config_file=[str(CONFIGS / name) for name in configs],
        meta_file=str(CONFIGS / "metadata.json"),
        logging_file=str(CONFIGS / "logging.conf"),
        bundle_root=str(BUNDLE),
        output_dir=str(tmp_path / out),
        ckpt_dir=str(models),
        input_dict=request,
        device="$torch.device('cpu')",
    )
    workflow.initialize()
    assert workflow.check_properties() == []
    workflow.run()
    workflow.finalize()
    return np.asarray(nib.load(str(tmp_path / out / "image_seg.nii.gz")).dataobj)


def test_torchscript_overlay_gives_the_masks_of_the_eager_run(exported, tmp_path):
    _, models = exported
    eager = run_inference(tmp_path, ["inference.json"], "eager", models)
    scripted = run_inference(tmp_path, ["inference.json", "inference_torchscript.json"], "torchscript", models)
    assert eager.shape == (70, 60, 50)
    labels, counts = np.unique(eager, return_counts=True)
    assert labels.tolist() == [0, 3, 7] and counts.min() > 1000, "both objects and background must be present"
    np.testing.assert_array_equal(scripted, eager)


def test_torchscript_overlay_builds_the_wrapper_on_the_exported_files(exported):
    _, models = exported
    parser = ConfigParser()
    parser.read_config([str(CONFIGS / "inference.json"), str(CONFIGS / "inference_torchscript.json")])
    parser.update({"bundle_root": str(BUNDLE), "ckpt_dir": str(models), "device": "$torch.device('cpu')"})
    assert parser.get_parsed_content("amp") is False  # traced in float32: no CUDA autocast around the traces
    network = parser.get_parsed_content("network")
    assert isinstance(network, TorchScriptSAMMed3D)
    assert isinstance(network.encoder, torch.jit.ScriptModule) and isinstance(network.decoder, torch.jit.ScriptModule)


def test_torchscript_overlay_checks_the_exported_files_instead_of_loading_weights():
    """The overlay repeats the base ``initialize`` and checks the .ts files (the eager weights are never loaded)."""
    base = json.loads((CONFIGS / "inference.json").read_text(encoding="utf-8"))["initialize"]
    overlay = json.loads((CONFIGS / "inference_torchscript.json").read_text(encoding="utf-8"))["initialize"]
    assert overlay == [*base, "$@scripts.networks.check_exported(@encoder_ts, @decoder_ts)"]


def test_torchscript_overlay_without_exported_files_says_how_to_make_them(tmp_path):
    workflow = ConfigWorkflow(
        workflow_type="infer",
        config_file=[str(CONFIGS / "inference.json"), str(CONFIGS / "inference_torchscript.json")],
        meta_file=str(CONFIGS / "metadata.json"),
        logging_file=str(CONFIGS / "logging.conf"),
        bundle_root=str(BUNDLE),
        ckpt_dir=str(tmp_path),
    )
    with pytest.raises(RuntimeError) as raised:  # MONAI wraps it; the CLI prints the user error alone (one line)
        workflow.initialize()
    assert re.search("TorchScript encoder not found: .*python -m scripts.export", str(user_error(raised.value)))


def test_trt_overlay_compiles_the_encoder_of_the_loaded_network(exported, monkeypatch):
    """TensorRT needs CUDA: here, the overlay's wiring, with ``trt_compile`` recorded instead of run."""
    network, models = exported
    calls = []

    def record(model, base_path, args=None, submodule=None, logger=None):
        calls.append({"model": model, "base_path": base_path, "args": args, "submodule": submodule})
        return model

    monkeypatch.setattr(monai.networks, "trt_compile", record)
    parser = ConfigParser()
    parser.read_config([str(CONFIGS / "inference.json"), str(CONFIGS / "inference_trt.json")])
    parser.update({"bundle_root": str(BUNDLE), "ckpt_dir": str(models), "device": "$torch.device('cpu')"})
    parser.get_parsed_content("initialize")  # as `monai.bundle run` does first: loads the weights into network_def
    compiled = parser.get_parsed_content("network")
    assert parser.get_parsed_content("amp") is False
    assert len(calls) == 1 and calls[0]["model"] is compiled
    assert calls[0]["submodule"] == ["image_encoder"]
    assert calls[0]["base_path"] == str(models / "model.pt")  # the plan is rebuilt when the weights are newer
    assert calls[0]["args"]["method"] == "onnx" and calls[0]["args"]["precision"] == "fp16"
    for key, value in network.state_dict().items():
        assert torch.equal(compiled.state_dict()[key], value), f"{key} is not the weights of models/model.pt"
    # TrtCompiler names the engine's inputs after the submodule's forward arguments.
    assert inspect.getfullargspec(compiled.image_encoder.forward).args[1:] == ["x"]


@pytest.mark.slow  # 43-55 s on the shared 2-core machine: the command traces the network and re-runs the trace
def test_ckpt_export_traces_the_image_only_forward(exported, window, eager_embedding, tmp_path):
    """``monai.bundle ckpt_export --use_trace True`` on a copy of the bundle with a model.pt of random weights."""
    network, models = exported
    copy = tmp_path / "bundle"
    for folder in ("configs", "scripts"):
        shutil.copytree(BUNDLE / folder, copy / folder, ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "models").mkdir()
    (copy / "models" / "model.pt").symlink_to(models / "model.pt")
    command = [sys.executable, "-m", "monai.bundle", "ckpt_export", "network_def", "--filepath", "models/model.ts"]
    command += ["--ckpt_file", "models/model.pt", "--meta_file", "configs/metadata.json"]
    command += ["--config_file", "configs/inference.json", "--use_trace", "True", "--input_shape", "[1,1,128,128,128]"]
    done = subprocess.run(command, cwd=copy, capture_output=True, encoding="utf-8", errors="replace")
    assert done.returncode == 0, done.stderr[-3000:]
    extra = {"metadata.json": "", "inference.json": ""}
    model = torch.jit.load(str(copy / "models" / "model.ts"), map_location="cpu", _extra_files=extra)
    assert json.loads(extra["metadata.json"]) == json.loads(
        (copy / "configs" / "metadata.json").read_text(encoding="utf-8")
    )
    assert "scripts.load_network" in json.dumps(json.loads(extra["inference.json"])["network_def"])
    (copy / "models" / "model.ts").unlink()  # 0.4 GB
    with torch.no_grad():
        expected = network.upsample(network.decode(eager_embedding)[0])  # forward(image): the zero mask prompt
        torch.testing.assert_close(model(window), expected, rtol=0, atol=ATOL)
