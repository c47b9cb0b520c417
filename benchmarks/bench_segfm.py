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
"""SegFM predictor wall time per challenge step, process start included, on a 512x512x300 case.

Usage (from the repository root): ``python benchmarks/bench_segfm.py [--classes 1 3 10] [--weights FILE |
--untrained] [--rule session]``. Each step is what the challenge runs: a new ``python -m monai.bundle run --config_file
configs/segfm_predict.json`` process on a folder holding the case. Step 1 has the boxes; step 2 adds one fg click per
class and ``prev_pred`` (step 1's output), as the evaluator writes them. A synthetic CT-like case: 512x512x300 uint8,
spacing (x, y, z) = (0.8, 0.8, 2.5) mm, K ellipsoid "organs" with their boxes. Printed: the process start alone
(imports and weights, measured on a 16^3 case), and per K the wall time of steps 1 and 2, the challenge's budget
(90 s x K for all six steps) and the machine's load.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = ROOT / "bundle"
SHAPE = (300, 512, 512)  # (D, H, W)
SPACING = (0.8, 0.8, 2.5)  # (x, y, z), as the challenge stores it


def organs(k: int) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """The image, its labels 1..k and their boxes."""
    rng = np.random.default_rng(0)
    z, y, x = np.ogrid[: SHAPE[0], : SHAPE[1], : SHAPE[2]]
    body = ((y - 256) / 220.0) ** 2 + ((x - 256) / 240.0) ** 2 < 1
    imgs = np.broadcast_to(np.where(body, 90, 5).astype(np.uint8), SHAPE).copy()
    gts = np.zeros(SHAPE, dtype=np.uint8)
    boxes = []
    for c in range(1, k + 1):
        centre = (rng.integers(60, 240), rng.integers(150, 360), rng.integers(150, 360))
        radii = (rng.integers(10, 30), rng.integers(20, 50), rng.integers(20, 50))
        inside = sum(((v - m) / r) ** 2 for v, m, r in zip((z, y, x), centre, radii)) < 1
        gts[inside] = c
        imgs[inside] = 90 + 14 * c
        zs, ys, xs = np.nonzero(gts == c)
        mid = int(np.unique(zs)[len(np.unique(zs)) // 2])
        ym, xm = np.nonzero(gts[mid] == c)
        boxes.append(
            dict(
                z_min=int(zs.min()), z_max=int(zs.max()), z_mid=mid, z_mid_x_min=int(xm.min()),
                z_mid_y_min=int(ym.min()), z_mid_x_max=int(xm.max()), z_mid_y_max=int(ym.max()),
            )
        )  # fmt: skip
    imgs = np.clip(imgs.astype(np.int16) + rng.integers(-8, 8, SHAPE), 0, 255).astype(np.uint8)
    return imgs, gts, boxes


def step(folder: Path, extra: list[str]) -> float:
    out = folder.parent / f"{folder.name}_out"
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", "configs/segfm_predict.json"]
    cmd += ["--input_dir", str(folder), "--output_dir", str(out), *extra]
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=BUNDLE, capture_output=True, encoding="utf-8", errors="replace")
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"error: the predictor failed: {done.stderr.strip().splitlines()[-1] if done.stderr else ''}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", type=int, nargs="+", default=[1, 3, 10])
    parser.add_argument("--weights", default=None, help="weights file (default: what bundle/models holds)")
    parser.add_argument("--untrained", action="store_true", help="an untrained full-size network (timing only)")
    parser.add_argument("--rule", default="session", choices=["session", "upstream"])
    args = parser.parse_args()
    extra = ["--segfm_rule", args.rule]
    if args.weights:
        extra += ["--weights", str(Path(args.weights).resolve())]
    if args.untrained:
        extra += ["--untrained", "True"]
    with tempfile.TemporaryDirectory() as tmp:
        small = Path(tmp) / "small"
        small.mkdir()
        box = dict(z_min=4, z_max=11, z_mid=8, z_mid_x_min=4, z_mid_y_min=4, z_mid_x_max=11, z_mid_y_max=11)
        imgs = np.random.default_rng(0).integers(0, 255, (16, 16, 16)).astype(np.uint8)
        np.savez_compressed(small / "s.npz", imgs=imgs, spacing=[1.0, 1.0, 1.0], boxes=np.array([box], dtype=object))
        start_only = step(small, extra)
        print(f"process start (imports, weights, a 16^3 case): {start_only:.1f} s")
        print("classes | step 1 (boxes) s | step 2 (clicks, prev_pred) s | 6 steps est. s | budget s")
        for k in args.classes:
            imgs, gts, boxes = organs(k)
            case = Path(tmp) / f"k{k}"
            case.mkdir()
            arrays = {"imgs": imgs, "spacing": np.asarray(SPACING), "boxes": np.array(boxes, dtype=object)}
            np.savez_compressed(case / "case.npz", **arrays)
            first = step(case, extra)
            with np.load(Path(tmp) / f"k{k}_out" / "case.npz") as f:
                prev = f["segs"]
            clicks = []
            for c in range(1, k + 1):
                missed = np.argwhere((gts == c) & (prev != c))
                point = missed[len(missed) // 2] if len(missed) else np.argwhere(gts == c)[0]
                clicks.append({"fg": [point.tolist()], "bg": []})
            order = [["fg"] for _ in range(k)]
            np.savez_compressed(
                case / "case.npz", **arrays, clicks=np.array(clicks, dtype=object), clicks_order=order, prev_pred=prev
            )
            second = step(case, extra)
            print(f"{k:7d} | {first:16.1f} | {second:28.1f} | {first + 5 * second:14.0f} | {90 * k:8d}")
    print(f"load average (1, 5, 15 min): {', '.join(f'{v:.2f}' for v in os.getloadavg())}; {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
