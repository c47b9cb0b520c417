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
"""MONAI Label app round trips and server memory: request sent -> mask file received, through ``MONAILabelClient``.

Usage (from the repository root, MONAI Label installed as README says):
``python benchmarks/bench_monailabel.py [--repeats 5] [--weights random|demo]``. It starts the real server
(``monailabel_app``) on a free port of 127.0.0.1 with synthetic CT-like volumes at 0.8 mm (256x256x160 and
512x512x300) and times a first click (image read, resampled, window encoded, decoded, mask written and sent) and
further clicks (one decoder pass, paste-back, mask written and sent). Then the server's resident memory with 1, 5 and
20 images of 256x256x160 cached. ``random`` (default): a full-size network with random weights (its cost does not
depend on their values), one window per object (``max_windows 1``: random masks would open tracking windows at
random); ``demo``: the bundle's demo model.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import requests
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bundle"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_inference import synthetic_ct  # noqa: E402
from monailabel.client import MONAILabelClient  # noqa: E402

from scripts.networks import SAMMed3D  # noqa: E402

# The timed images: name -> shape (0.8 mm voxels).
CASES = {"ct256": (256, 256, 160), "ct512": (512, 512, 300)}
# How many images are cached when the memory is read.
MEMORY_POINTS = (1, 5, 20)


def start_server(workdir: Path, studies: Path, conf: list[str]) -> tuple[subprocess.Popen, str]:
    """The server on a free port; returns the process and its URL once /info/ answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = workdir / "monailabel_app"
    shutil.copytree(ROOT / "monailabel_app", app, ignore=shutil.ignore_patterns("logs", "model", "bin", "__pycache__"))
    cmd = [sys.executable, "-m", "monailabel.main", "start_server", "--app", str(app), "--studies", str(studies)]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--conf", "bundle", str(ROOT / "bundle"), *conf]
    log = (workdir / "server.log").open("w", encoding="utf-8")
    env = {**os.environ, "MONAI_LABEL_DATASTORE_AUTO_RELOAD": "false"}
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        if proc.poll() is not None:
            raise SystemExit(f"error: the server ended at start; see {workdir / 'server.log'}")
        try:
            requests.get(f"{url}/info/", timeout=5)
            return proc, url
        except requests.ConnectionError:
            time.sleep(0.5)
    raise SystemExit("error: the server did not start in 300 s")


def round_trip(client: MONAILabelClient, image_id: str, foreground: list, background: list) -> float:
    """Seconds from sending the request to the mask file on disk."""
    start = time.perf_counter()
    file_name, _ = client.infer("sam_med3d", image_id, {"foreground": foreground, "background": background})
    seconds = time.perf_counter() - start
    os.remove(file_name)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="further clicks timed per image")
    parser.add_argument("--weights", choices=("random", "demo"), default="random")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench_monailabel_"))
    studies = workdir / "studies"
    studies.mkdir()
    for name, shape in CASES.items():
        synthetic_ct(shape, studies / f"{name}.nii.gz")
    for i in range(max(MEMORY_POINTS)):
        shutil.copy(studies / "ct256.nii.gz", studies / f"memory{i:02d}.nii.gz")
    conf = ["--conf", "cache_images", str(max(MEMORY_POINTS) + len(CASES))]
    if args.weights == "random":
        torch.manual_seed(0)
        torch.save(SAMMed3D().state_dict(), workdir / "random.pt")
        conf += ["--conf", "weights", str(workdir / "random.pt"), "--conf", "max_windows", "1"]
    proc, url = start_server(workdir, studies, conf)
    try:
        client = MONAILabelClient(url, client_id="bench")
        print(f"MONAI Label round trips ({args.weights} weights; {torch.get_num_threads()} threads), request -> file:")
        for name, shape in CASES.items():
            centre = [s // 2 for s in shape]
            first = round_trip(client, name, [centre], [])
            further = []
            background = []
            for r in range(args.repeats):
                background.append([centre[0] + 3 + r, centre[1] + 2, centre[2]])
                further.append(round_trip(client, name, [centre], list(background)))
            print(
                f"  {name} {shape}: first click {first:.2f} s; further click median {statistics.median(further) * 1e3:.0f} "
                f"ms (min {min(further) * 1e3:.0f}, max {max(further) * 1e3:.0f}, {args.repeats} clicks)"
            )
        server = psutil.Process(proc.pid)
        print("server memory (RSS) with images of 256x256x160 cached (besides the two above):")
        cached = 0
        for count in MEMORY_POINTS:
            while cached < count:
                round_trip(client, f"memory{cached:02d}", [[128, 128, 80]], [])
                cached += 1
            print(f"  {count:2d} image(s): {server.memory_info().rss / 2**20:.0f} MiB")
    finally:
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
