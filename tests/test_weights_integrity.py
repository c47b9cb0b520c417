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
"""The released weights verify on download (``large_files.yml``'s SHA-256, through MONAI's ``download_large_files``
from a local HTTP server), and a truncated checkpoint ends a run with one ``error:`` line."""

from __future__ import annotations

import functools
import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch
import yaml
from conftest import BUNDLE

from scripts.networks.checkpoint import read_checkpoint

DEMO_MODEL = BUNDLE / "models" / "demo_model.pt"
# The published SHA-256 of sam_med3d_turbo.pth (Hugging Face blueyo0/SAM-Med3D, commit 07f6f69, 402,163,626 bytes).
PUBLISHED_SHA256 = "899a46d04d3b70f723282ceb489149373558bf0aaba389a346f5ab57da5cdd3c"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Hub:
    """A throwaway HTTP server on 127.0.0.1 serving one folder, and the paths it was asked for."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.requests = folder, []
        hub = self

        class Handler(SimpleHTTPRequestHandler):
            def log_message(self, format: str, *args) -> None:  # noqa: A002 (the base class's name)
                hub.requests.append(self.path)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(folder)))
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()


@pytest.fixture
def hub(tmp_path) -> Iterator[Hub]:
    (tmp_path / "hub").mkdir()
    served = Hub(tmp_path / "hub")
    yield served
    served.server.shutdown()
    served.server.server_close()


def bundle_with_large_files(root: Path, url: str, hash_val: str | None = None) -> Path:
    """A bundle folder holding the shipped ``large_files.yml`` with its url pointed at ``url`` (and, if given, another
    ``hash_val``); the rest of the entry (path, hash type, published hash) as shipped."""
    config = yaml.safe_load((BUNDLE / "large_files.yml").read_text(encoding="utf-8"))
    (entry,) = config["large_files"]
    entry["url"] = url
    if hash_val is not None:
        entry["hash_val"] = hash_val
    root.mkdir()
    (root / "large_files.yml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return root


def download_large_files(bundle: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "no_proxy": "127.0.0.1,localhost", "NO_PROXY": "127.0.0.1,localhost"}
    command = [sys.executable, "-m", "monai.bundle", "download_large_files", "--bundle_path", str(bundle)]
    return subprocess.run(command, capture_output=True, encoding="utf-8", errors="replace", env=env, timeout=300)


def test_large_files_pins_the_published_sha256_of_the_released_weights():
    (entry,) = yaml.safe_load((BUNDLE / "large_files.yml").read_text(encoding="utf-8"))["large_files"]
    assert entry["path"] == "models/model.pt" and entry["url"].endswith("/SAM-Med3D/resolve/main/sam_med3d_turbo.pth")
    assert (entry["hash_type"], entry["hash_val"]) == ("sha256", PUBLISHED_SHA256)


def test_a_download_with_another_hash_is_refused_and_not_saved(hub, tmp_path):
    """A file that is not the released one (here the demo model) fails the shipped SHA-256 check: nothing lands."""
    shutil.copy(DEMO_MODEL, hub.folder / "sam_med3d_turbo.pth")
    bundle = bundle_with_large_files(tmp_path / "bundle", f"{hub.url}/sam_med3d_turbo.pth")
    done = download_large_files(bundle)
    log = done.stdout + done.stderr
    assert hub.requests == ["/sam_med3d_turbo.pth"], "the file was downloaded from the local server"
    assert done.returncode != 0, log[-3000:]
    assert "HashCheckError: sha256 hash check of downloaded file failed" in log, log[-3000:]
    assert f"expected sha256={PUBLISHED_SHA256}" in log and "corrupted or tampered with" in log
    assert not (bundle / "models" / "model.pt").exists()


def test_a_download_with_the_expected_hash_is_accepted_and_loads(hub, tmp_path):
    data = DEMO_MODEL.read_bytes()
    (hub.folder / "sam_med3d_turbo.pth").write_bytes(data)
    bundle = bundle_with_large_files(tmp_path / "bundle", f"{hub.url}/sam_med3d_turbo.pth", hash_val=sha256(data))
    done = download_large_files(bundle)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    landed = bundle / "models" / "model.pt"
    assert landed.read_bytes() == data
    state, _ = read_checkpoint(landed)
    assert state.keys() == torch.load(DEMO_MODEL, weights_only=True).keys()


def test_an_existing_model_pt_with_another_hash_is_refused(hub, tmp_path):
    """A model.pt left by an earlier copy (here half the demo model) is not taken for the released file."""
    bundle = bundle_with_large_files(tmp_path / "bundle", f"{hub.url}/sam_med3d_turbo.pth")
    (bundle / "models").mkdir()
    half = DEMO_MODEL.read_bytes()[: DEMO_MODEL.stat().st_size // 2]
    (bundle / "models" / "model.pt").write_bytes(half)
    done = download_large_files(bundle)
    assert done.returncode != 0 and "sha256 hash check of existing file failed" in done.stdout + done.stderr
    assert hub.requests == [] and (bundle / "models" / "model.pt").read_bytes() == half


def _saved(legacy: bool) -> bytes:
    state = torch.load(DEMO_MODEL, weights_only=True)
    buffer = io.BytesIO()
    torch.save(state, buffer, _use_new_zipfile_serialization=not legacy)
    return buffer.getvalue()


# Cut points (fractions of the file, in 1/400): every one of the first ten, where torch raises OSError, struct.error
# or EOFError, then every 40th, where it raises RuntimeError.
CUTS = list(range(10)) + list(range(40, 400, 40))


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_a_truncated_checkpoint_is_a_value_error_naming_the_file_and_what_to_do(tmp_path, legacy):
    data = _saved(legacy)
    for cut in CUTS:
        path = tmp_path / f"model_{cut}.pt"
        path.write_bytes(data[: len(data) * cut // 400])
        with pytest.raises(ValueError) as raised:
            read_checkpoint(path)
        message = str(raised.value)
        assert message.startswith(f"{path} ({path.stat().st_size:,} bytes) is not a readable PyTorch checkpoint")
        assert "remove it and fetch it again" in message and "SHA-256" in message and "\n" not in message


def test_a_truncated_model_pt_ends_the_command_line_with_one_error_line(tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    (models / "model.pt").write_bytes(DEMO_MODEL.read_bytes()[: DEMO_MODEL.stat().st_size // 2])
    command = [sys.executable, "-m", "monai.bundle", "run", "--config_file", "configs/inference.json"]
    command += ["--ckpt_dir", str(models), "--output_dir", str(tmp_path / "out")]
    done = subprocess.run(command, cwd=BUNDLE, capture_output=True, encoding="utf-8", errors="replace")
    log = done.stdout + done.stderr
    errors = [line for line in log.splitlines() if re.search(r"\berror:", line, re.I)]
    assert done.returncode == 1 and len(errors) == 1, log[-3000:]
    assert errors[0].startswith(f"error: {models / 'model.pt'} (")
    assert "is not a readable PyTorch checkpoint" in errors[0]
    assert "download_large_files" in errors[0] and "SHA-256" in errors[0]
    assert "Traceback" not in log and not (tmp_path / "out").exists()
