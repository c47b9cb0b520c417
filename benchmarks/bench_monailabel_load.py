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
"""The MONAI Label app under load: 4 clients x 2 images x 50 clicks, interleaved, on 127.0.0.1 (bounded: 400
requests, 120 s each at most).

Usage (from the repository root, with the Python of README's MONAI Label install):
``python benchmarks/bench_monailabel_load.py [--clients 4] [--clicks 50]``. Each client is a thread with its own client
id clicking one organ of the shipped CT (the demo model: real masks, default ``max_windows``) on two images, the CT and
the same CT at 512x512x300, alternately, as 3D Slicer does (every request resends the client's clicks). Afterwards,
each client's clicks are replayed alone in this process: every answer must equal the session's mask after the same
clicks. It prints p50 and p95 latency, errors, and the server's resident memory from the first to the last quarter of
the requests after warm-up (which must stay within 10 %).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
import threading
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import psutil
import torch
from scipy.ndimage import binary_dilation

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "bundle"))
sys.path.insert(0, str(HERE))
from bench_monailabel import DEMO_CT, large_demo_ct  # noqa: E402
from monailabel.client import MONAILabelClient  # noqa: E402
from monailabel_server import ROOT, Server, slicer_click  # noqa: E402

from scripts import load_network  # noqa: E402
from scripts.inference import ClickWindowInferer, InteractiveSession  # noqa: E402
from scripts.inference.image_input import as_image  # noqa: E402

# The organs the clients click (TotalSegmentator ids of the shipped CT's labels).
ORGANS = {"kidney_right": 2, "liver": 5, "spleen": 1, "urinary_bladder": 21}
LABELS = ROOT / "bundle" / "sample_data" / "example_seg_fast_force_split.nii.gz"


def click_plan(organ: np.ndarray, count: int, rng: np.random.Generator) -> list[tuple[list[int], bool]]:
    """``count`` clicks on an organ: the first positive at its deepest slice's centre, then inside (70 %) or just
    outside it (30 %, negative)."""
    inside = np.argwhere(organ)
    shell = np.argwhere(binary_dilation(organ, iterations=2) & ~organ)
    centre = inside[np.argmin(((inside - inside.mean(0)) ** 2).sum(1))]
    plan = [(centre.tolist(), True)]
    while len(plan) < count:
        positive = rng.random() < 0.7
        pool = inside if positive else shell
        plan.append((pool[rng.integers(len(pool))].tolist(), positive))
    return plan


def digest(mask: np.ndarray) -> str:
    """A mask's fingerprint (400 full-size masks would not fit in memory)."""
    return hashlib.sha256(np.packbits(mask).tobytes() + str(mask.shape).encode("utf-8")).hexdigest()


def run_client(url: str, name: str, images: dict, plans: dict, results: dict, errors: list) -> None:
    client = MONAILabelClient(url, client_id=name)
    for step in range(len(next(iter(plans.values())))):
        for image_id in images:
            clicks = plans[image_id][: step + 1]
            foreground = [p for p, positive in clicks if positive]
            background = [p for p, positive in clicks if not positive]
            try:
                seconds, mask = slicer_click(client, image_id, foreground, background, name)
            except Exception as e:  # counted, not raised: the run goes on
                errors.append(f"{name} {image_id} step {step}: {e}")
                continue
            results[(name, image_id, step)] = (seconds, digest(mask), time.perf_counter())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--clicks", type=int, default=50)
    args = parser.parse_args()
    torch.set_num_threads(2)
    rng = np.random.default_rng(0)
    labels = np.asarray(nib.load(str(LABELS)).dataobj)
    with tempfile.TemporaryDirectory(prefix="bench_load_") as workdir:
        work = Path(workdir)
        studies = work / "studies"
        studies.mkdir()
        (studies / "demo_ct.nii.gz").write_bytes(DEMO_CT.read_bytes())
        scale = large_demo_ct(studies / "demo_ct512.nii.gz")
        images = {"demo_ct": studies / "demo_ct.nii.gz", "demo_ct512": studies / "demo_ct512.nii.gz"}
        clients = {}
        for name, value in list(ORGANS.items())[: args.clients]:
            plan = click_plan(labels == value, args.clicks, rng)
            large = [([min(round(v * s), n - 1) for v, s, n in zip(p, scale, (512, 512, 300))], pos) for p, pos in plan]
            clients[name] = {"demo_ct": plan, "demo_ct512": large}
        server = Server(work, studies, ["cache_images", "4"])
        process = psutil.Process(server.proc.pid)
        results, errors, memory = {}, [], []
        stop = threading.Event()

        def sample_memory() -> None:
            while not stop.wait(0.2):
                memory.append((time.perf_counter(), process.memory_info().rss))

        sampler = threading.Thread(target=sample_memory, daemon=True)
        sampler.start()
        threads = [
            threading.Thread(target=run_client, args=(server.url, name, images, plans, results, errors))
            for name, plans in clients.items()
        ]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=args.clicks * len(images) * 120)
        elapsed = time.perf_counter() - started
        stop.set()
        server.stop()

        network = load_network(ROOT / "bundle" / "models")  # the server's weights: the lookup finds the demo model
        inferer = ClickWindowInferer()
        prepared = {image_id: inferer.prepare(as_image(path), network) for image_id, path in images.items()}
        wrong = 0
        for name, plans in clients.items():
            for image_id, plan in plans.items():
                session = InteractiveSession.on_prepared(prepared[image_id], inferer)
                for step, (point, positive) in enumerate(plan):
                    session.click(point, positive=positive)
                    answer = results.get((name, image_id, step))
                    if answer is not None and answer[1] != digest(session.mask):
                        wrong += 1
        latencies = np.array([r[0] for r in results.values()])
        finished = sorted(r[2] for r in results.values())
        warm = finished[len(finished) // 10] if finished else started
        rss = [m for t, m in memory if t >= warm]
        quarter = max(len(rss) // 4, 1)
        first, last = np.mean(rss[:quarter]) / 2**20, np.mean(rss[-quarter:]) / 2**20
        print(
            f"{len(clients)} clients x {len(images)} images x {args.clicks} clicks: {len(results)} answers in {elapsed:.0f} s"
        )
        print(f"  errors: {len(errors)}; answers unlike the client's own session: {wrong}")
        for line in errors[:5]:
            print(f"    {line}")
        print(
            f"  latency p50 {np.percentile(latencies, 50) * 1e3:.0f} ms, p95 {np.percentile(latencies, 95) * 1e3:.0f} ms"
        )
        print(
            f"  server RSS after warm-up: first quarter {first:,.0f} MiB, last quarter {last:,.0f} MiB "
            f"({(last - first) / first * 100:+.1f} %)"
        )
        print(f"  load average at the end: {psutil.getloadavg()}")


if __name__ == "__main__":
    main()
