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
Then the default path, where real masks decide the windows (``max_windows`` 8): the demo model on the shipped CT
repeated to 512x512x300, README's three organs (the right kidney, the bladder and the liver, which is followed into
four windows), and a session's further clicks on the liver.
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

from scripts import InteractiveSession, load_network  # noqa: E402
from scripts.networks import SAMMed3D  # noqa: E402

BUNDLE = Path(__file__).resolve().parents[1] / "bundle"
CASES = {"256x256x160": ((256, 256, 160), 1), "512x512x300": ((512, 512, 300), 3), "demo512": ((512, 512, 300), 3)}
# The demo case's organs on the shipped CT (README's clicks): name -> (click, label value)
DEMO_OBJECTS = {"kidney_right": ((86, 43, 74), 2), "urinary_bladder": ((59, 53, 18), 21), "liver": ((86, 47, 100), 5)}


def synthetic_ct(shape: tuple[int, int, int], path: Path) -> None:
    """Body-like ellipsoid of soft tissue with two brighter organs, air outside, int16 HU, 0.8 mm."""
    grid = np.stack(np.meshgrid(*(np.linspace(-1, 1, s) for s in shape), indexing="ij"))
    body = (grid[0] ** 2 + grid[1] ** 2 / 0.6 + grid[2] ** 2 / 4) < 0.8
    ct = np.where(body, 40, -1000).astype(np.int16)
    ct[((grid[0] - 0.3) ** 2 + grid[1] ** 2 + grid[2] ** 2) < 0.05] = 120
    ct[((grid[0] + 0.3) ** 2 + grid[1] ** 2 + grid[2] ** 2) < 0.03] = 200
    nib.save(nib.Nifti1Image(ct, np.diag([0.8, 0.8, 0.8, 1.0])), str(path))


def demo_ct(shape: tuple[int, int, int], path: Path) -> list[tuple[float, ...]]:
    """The shipped CT's voxels repeated to ``shape`` over the same extent (int16); returns the scale per axis."""
    ct = nib.load(str(BUNDLE / "sample_data" / "example_ct.nii.gz"))
    data = np.asarray(ct.dataobj).astype(np.int16)
    index = [np.minimum((np.arange(n) * m) // n, m - 1) for n, m in zip(shape, data.shape)]
    nib.save(
        nib.Nifti1Image(data[np.ix_(*index)], ct.affine @ np.diag([m / n for n, m in zip(shape, data.shape)] + [1.0])),
        str(path),
    )
    return [n / m for n, m in zip(shape, data.shape)]


def make_image(case: str, workdir: Path) -> list[float]:
    """The case's image file (made by the parent process: its peak memory is not the request's); the demo's scale."""
    shape = CASES[case][0]
    if case == "demo512":
        return demo_ct(shape, workdir / f"{case}.nii.gz")
    synthetic_ct(shape, workdir / f"{case}.nii.gz")
    return [1.0, 1.0, 1.0]


def child(case: str, repeats: int, workdir: Path, scale: list[float]) -> None:
    shape, num_objects = CASES[case]
    image = workdir / f"{case}.nii.gz"
    demo = case == "demo512"
    if demo:
        clicks = [[round(v * s) for v, s in zip(click, scale)] for click, _ in DEMO_OBJECTS.values()]
        objects = {
            name: {"points": [c], "point_labels": [1], "label": value}
            for (name, (_, value)), c in zip(DEMO_OBJECTS.items(), clicks)
        }
    else:
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
            input_dict={"image": str(image), "objects": objects},
            **(
                {}  # the demo model, found by the bundle's lookup; windows followed as by default
                if demo
                else {
                    "ckpt_dir": str(workdir / "no_weights"),  # the full-size network (random weights)
                    "max_windows": 1,  # random weights would send window tracking anywhere: the reference's window
                    "untrained": True,
                }
            ),
        )
        workflow.initialize()  # builds the network (random weights): not part of a request
        start = time.perf_counter()
        workflow.run()
        times.append(time.perf_counter() - start)
        workflow.finalize()
        if r == 0:  # one request's peak: later workflows add their own network and state to the process
            peak_requests = peak_rss_mb()
        del workflow
    if demo:  # the liver, over four windows
        session = InteractiveSession(load_network(BUNDLE / "models"), str(image))
        target = clicks[2]
    else:
        session = InteractiveSession(SAMMed3D().eval(), str(image), max_windows=1)  # as the requests above
        target = clicks[0]
    session.click(target)  # encodes the windows
    further = []
    for step in range(1, 6):
        start = time.perf_counter()
        session.click([target[0] + step, target[1], target[2]], positive=step % 2 == 0)
        further.append(time.perf_counter() - start)
    result = {"case": case, "objects": num_objects, "times": times, "peak_mb": peak_requests, "base": before}
    print(json.dumps({**result, "further_clicks": further, "windows": len(session.track.windows)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--child", choices=sorted(CASES), help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    parser.add_argument("--scale", default="[1, 1, 1]", help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.child:
        child(args.child, args.repeats, Path(args.workdir), json.loads(args.scale))
        return
    print(f"torch {torch.__version__}, {args.threads} threads; times from the loaded config to the written mask")
    with tempfile.TemporaryDirectory() as workdir:
        for case in CASES:
            scale = make_image(case, Path(workdir))
            cmd = [sys.executable, __file__, "--child", case, "--repeats", str(args.repeats), "--workdir", workdir]
            cmd += ["--threads", str(args.threads), "--scale", json.dumps(scale)]
            out = subprocess.run(
                cmd, capture_output=True, encoding="utf-8", errors="replace", check=True
            ).stdout.splitlines()[-1]
            r = json.loads(out)
            t = r["times"]
            what = "the demo CT, demo model" if r["case"] == "demo512" else "synthetic @ 0.8 mm, random weights"
            print(
                f"{r['case']} ({what}), {r['objects']} object(s): median {statistics.median(t):.2f} s "
                f"(min {min(t):.2f}, max {max(t):.2f}, n={len(t)}), "
                f"{statistics.median(t) / r['objects']:.2f} s per object, peak RSS {r['peak_mb']:.0f} MB"
            )
            f = r["further_clicks"]
            print(
                f"  session, further click ({r['windows']} window(s); mask on the original grid): median "
                f"{statistics.median(f) * 1000:.0f} ms (min {min(f) * 1000:.0f}, max {max(f) * 1000:.0f}, n={len(f)})"
            )


if __name__ == "__main__":
    main()
