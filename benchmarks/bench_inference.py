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
"""Whole-request inference time and memory: read image -> clicks -> masks written, as `monai.bundle run` does it.

Usage (from the repository root): ``python benchmarks/bench_inference.py [--repeats 3]``. Each case runs in a fresh
process (peak memory is per process). The network has random weights: its cost does not depend on their values.
Cases: a synthetic CT-like 256x256x160 volume at 0.8 mm with one object, and 512x512x300 at 0.8 mm with three;
then, on the same image, an interactive session's further clicks in the same window. One window per object
(``max_windows=1``, as the reference), since the random network's masks would trigger window tracking at random.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bundle"))
from bench_network import peak_rss_mb  # noqa: E402
from monai.bundle import ConfigWorkflow  # noqa: E402

from scripts import InteractiveSession  # noqa: E402
from scripts.networks import SAMMed3D  # noqa: E402

BUNDLE = Path(__file__).resolve().parents[1] / "bundle"
CASES = {"256x256x160": ((256, 256, 160), 1), "512x512x300": ((512, 512, 300), 3)}


def synthetic_ct(shape: tuple[int, int, int], path: Path) -> None:
    """Body-like ellipsoid of soft tissue with two brighter organs, air outside, int16 HU, 0.8 mm."""
    grid = np.stack(np.meshgrid(*(np.linspace(-1, 1, s) for s in shape), indexing="ij"))
    body = (grid[0] ** 2 + grid[1] ** 2 / 0.6 + grid[2] ** 2 / 4) < 0.8
    ct = np.where(body, 40, -1000).astype(np.int16)
    ct[((grid[0] - 0.3) ** 2 + grid[1] ** 2 + grid[2] ** 2) < 0.05] = 120
    ct[((grid[0] + 0.3) ** 2 + grid[1] ** 2 + grid[2] ** 2) < 0.03] = 200
    nib.save(nib.Nifti1Image(ct, np.diag([0.8, 0.8, 0.8, 1.0])), str(path))


def child(case: str, repeats: int, workdir: Path) -> None:
    shape, num_objects = CASES[case]
    image = workdir / f"{case}.nii.gz"
    synthetic_ct(shape, image)
    centre = [s // 2 for s in shape]
    clicks = [[centre[0] + 60 * (i - 1), centre[1], centre[2]] for i in range(num_objects)]
    objects = {f"object{i}": {"points": [c], "point_labels": [1]} for i, c in enumerate(clicks)}
    before = peak_rss_mb()
    times = []
    for r in range(repeats):
        workflow = ConfigWorkflow(
            workflow_type="infer",
            config_file=str(BUNDLE / "configs" / "inference.json"),
            bundle_root=str(BUNDLE),
            output_dir=str(workdir / f"out{r}"),
            ckpt_dir=str(workdir / "no_weights"),  # the full-size network (random weights), not the demo model
            max_windows=1,  # random weights would send the window tracking anywhere: time the reference's one window
            untrained=True,
            input_dict={"image": str(image), "objects": objects},
        )
        workflow.initialize()  # builds the network (random weights): not part of a request
        start = time.perf_counter()
        workflow.run()
        times.append(time.perf_counter() - start)
        workflow.finalize()
    peak_requests = peak_rss_mb()  # before the session builds a second network
    session = InteractiveSession(SAMMed3D().eval(), str(image), max_windows=1)  # as the requests above
    session.click(clicks[0])  # encodes the window
    further = []
    for step in range(1, 6):
        start = time.perf_counter()
        session.click([clicks[0][0] + step, clicks[0][1], clicks[0][2]], positive=step % 2 == 0)
        further.append(time.perf_counter() - start)
    result = {"case": case, "objects": num_objects, "times": times, "peak_mb": peak_requests, "base": before}
    print(json.dumps({**result, "further_clicks": further}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--child", choices=sorted(CASES), help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.child:
        child(args.child, args.repeats, Path(args.workdir))
        return
    print(f"torch {torch.__version__}, {args.threads} threads; times from the loaded config to the written mask")
    with tempfile.TemporaryDirectory() as workdir:
        for case in CASES:
            cmd = [sys.executable, __file__, "--child", case, "--repeats", str(args.repeats), "--workdir", workdir]
            cmd += ["--threads", str(args.threads)]
            out = subprocess.run(
                cmd, capture_output=True, encoding="utf-8", errors="replace", check=True
            ).stdout.splitlines()[-1]
            r = json.loads(out)
            t = r["times"]
            print(
                f"{r['case']} @ 0.8 mm, {r['objects']} object(s): median {statistics.median(t):.2f} s "
                f"(min {min(t):.2f}, max {max(t):.2f}, n={len(t)}), "
                f"{statistics.median(t) / r['objects']:.2f} s per object, peak RSS {r['peak_mb']:.0f} MB"
            )
            f = r["further_clicks"]
            print(
                f"  session, further click in the same window (mask on the original grid): median "
                f"{statistics.median(f) * 1000:.0f} ms (min {min(f) * 1000:.0f}, max {max(f) * 1000:.0f}, n={len(f)})"
            )


if __name__ == "__main__":
    main()
