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
"""The MONAI Label app started as README says (this Python, ``--log_config monailabel_app/logging.json``) on 127.0.0.1
for the benchmarks, and the two viewers' requests: 3D Slicer's (``MONAILabelClient``, a ``.nii.gz`` answer in a
multipart reply) and OHIF's (``output=image``, a raw ``.nrrd`` answer)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import nrrd
import numpy as np
import requests

ROOT = Path(__file__).resolve().parents[1]
MODEL = "sam_med3d"
# OHIF 0.8.5's point-prompt parameters (its MONAI Label panel)
OHIF_PARAMS = {
    "result_extension": ".nrrd",
    "result_dtype": "uint8",
    "result_compress": False,
    "restore_label_idx": False,
}


class Server:
    """The app on a free port of 127.0.0.1 with a copy of the app folder (it writes logs and answers there).

    Args:
        workdir: scratch folder (the app copy and the server's log go there).
        studies: the studies folder or a DICOMweb URL.
        conf: ``--conf`` pairs, flat (``["weights", "w.pt", ...]``).
    """

    def __init__(self, workdir: Path, studies: str | Path, conf: list[str]) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        app = workdir / f"app_{self.port}"
        shutil.copytree(ROOT / "monailabel_app", app, ignore=shutil.ignore_patterns("logs", "answers", "__pycache__"))
        cmd = [sys.executable, "-m", "monailabel.main", "start_server", "--app", str(app), "--studies", str(studies)]
        cmd += ["--host", "127.0.0.1", "--port", str(self.port), "--log_config", str(app / "logging.json")]
        cmd += ["--conf", "bundle", str(ROOT / "bundle")]
        for name, value in zip(conf[::2], conf[1::2]):
            cmd += ["--conf", name, value]
        self.log = workdir / f"server_{self.port}.log"
        env = {**os.environ, "MONAI_LABEL_DATASTORE_AUTO_RELOAD": "false"}
        with self.log.open("w", encoding="utf-8") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.time() + 300
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"error: the server ended at start; see {self.log}")
            try:
                requests.get(f"{self.url}/info/", timeout=5)
                return
            except requests.ConnectionError:
                time.sleep(0.3)
        raise SystemExit(f"error: the server did not start in 300 s; see {self.log}")

    def stop(self) -> None:
        """Stop the server."""
        self.proc.terminate()
        self.proc.wait(60)


def slicer_click(client, image_id: str, foreground: list, background: list, label: str) -> tuple[float, np.ndarray]:
    """3D Slicer's request through ``MONAILabelClient``: seconds from sending to the ``.nii.gz`` on disk, and the mask."""
    start = time.perf_counter()
    path, _ = client.infer(MODEL, image_id, {"foreground": foreground, "background": background, "label": label})
    seconds = time.perf_counter() - start
    mask = np.asarray(nib.load(path).dataobj) > 0
    os.remove(path)
    return seconds, mask


def ohif_click(url: str, image_id: str, foreground: list, background: list, scratch: Path) -> tuple[float, np.ndarray]:
    """OHIF's request: seconds from sending to the raw ``.nrrd`` received, and the mask."""
    params = json.dumps({"foreground": foreground, "background": background, **OHIF_PARAMS})
    start = time.perf_counter()
    answer = requests.post(
        f"{url}/infer/{MODEL}",
        params={"image": image_id, "output": "image"},
        data={"params": params},
        timeout=600,
        stream=True,
    )
    answer.raise_for_status()
    body = b"".join(answer.iter_content(4 << 20))  # read as a browser does, not in requests' 10 KB default chunks
    seconds = time.perf_counter() - start
    scratch.write_bytes(body)
    mask = nrrd.read(str(scratch))[0] > 0
    return seconds, mask
