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
"""Batch throughput: cases per minute of ``batch_inference.json`` with 1 process and, under torchrun, with more.

Usage (from the repository root): ``python benchmarks/bench_batch.py [--cases 8] [--processes 1 2] [--large 0]``.
The cases are copies of the small test CT and MRI (``tests/data/totalsegmentator``) with one click each, run with
the demo model (``bundle/models/demo_model.pt``), one window per object. Every process has one thread (torchrun's
default for its workers; set for the one-process run too), so that the number of processes is what changes.
Printed per run: the batch time from the ``batch:`` line (first case to the report, all ranks), cases per minute,
the wall time of the whole command (start-up and network loading included) and the peak resident memory of the
largest process. ``--large N`` adds a one-process run over N synthetic 512x512x300 CTs (int16, 0.8 mm) for the
peak memory per rank on a large study.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = ROOT / "bundle"
DATA = ROOT / "tests" / "data" / "totalsegmentator"
CONFIGS = ["configs/inference.json", "configs/batch_inference.json"]
# The small test images and a click inside each (voxel indices).
SOURCES = [("example_ct_sm.nii.gz", [77, 35, 13]), ("example_mr_sm.nii.gz", [40, 30, 10])]


def make_cases(folder: Path, count: int, large: bool = False) -> Path:
    """``count`` cases in ``folder/images`` and their prompts file; returns the prompts file."""
    images = folder / "images"
    images.mkdir(parents=True)
    prompts = {}
    for i in range(count):
        name = f"case{i:03d}.nii.gz"
        if large:
            x, y, z = np.ogrid[-1:1:512j, -1:1:512j, -1:1:300j]
            ct = np.where((x**2 + y**2 / 0.6 + z**2 / 4) < 0.8, 40, -1000).astype(np.int16)  # a body, air outside
            ct[(x - 0.3) ** 2 + y**2 + z**2 < 0.05] = 120  # two brighter organs, one under the click
            ct[(x + 0.3) ** 2 + y**2 + z**2 < 0.03] = 200
            ct += np.random.default_rng(i).integers(-20, 20, ct.shape, dtype=np.int16)  # texture
            nib.save(nib.Nifti1Image(ct, np.diag([0.8, 0.8, 0.8, 1.0])), str(images / name))
            point = [333, 256, 150]  # inside the organ at x = +0.3
        else:
            source, point = SOURCES[i % len(SOURCES)]
            shutil.copy(DATA / source, images / name)
        prompts[name] = {"points": [point], "point_labels": [1]}
    path = folder / "prompts.json"
    path.write_text(json.dumps(prompts), encoding="utf-8")
    return path


def run_batch(prompts: Path, out: Path, processes: int) -> dict:
    """One batch run in a fresh process tree; its batch time, wall time and peak memory."""
    files = (
        "["
        + ",".join(f"'{c}'" for c in CONFIGS + (["configs/multi_gpu_batch_inference.json"] if processes > 1 else []))
        + "]"
    )
    cmd = [sys.executable]
    if processes > 1:
        cmd += ["-m", "torch.distributed.run", "--standalone", "--nnodes=1", f"--nproc_per_node={processes}"]
    cmd += ["-m", "monai.bundle", "run", "--config_file", files, "--weights", str(BUNDLE / "models" / "demo_model.pt")]
    cmd += ["--input_dir", str(prompts.parent / "images"), "--prompts_file", str(prompts), "--output_dir", str(out)]
    cmd += ["--max_windows", "1"]
    start = time.perf_counter()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # one thread per process: the processes are what is compared
    done = subprocess.run(cmd, cwd=BUNDLE, env=env, capture_output=True, encoding="utf-8", errors="replace")
    wall = time.perf_counter() - start
    if done.returncode != 0:
        failures = out / "batch_failures.csv"
        raise SystemExit(
            f"error: the batch failed: {failures.read_text(encoding='utf-8') if failures.exists() else done.stderr[-3000:]}"
        )
    line = next(x for x in done.stdout.splitlines() if x.startswith("batch: "))
    seconds = float(re.search(r"failed, ([0-9.]+) s;", line).group(1))
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # the largest process so far, Linux KiB
    return {"batch_s": seconds, "wall_s": wall, "peak_mb": peak_mb, "line": line}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=8)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--large", type=int, default=0, help="also N synthetic 512x512x300 CTs on one process")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        prompts = make_cases(Path(tmp) / "small", args.cases)
        results = {}
        for n in args.processes:
            r = run_batch(prompts, Path(tmp) / f"out{n}", n)
            results[n] = r
            print(
                f"{args.cases} cases, {n} process(es): batch {r['batch_s']:.1f} s = "
                f"{60 * args.cases / r['batch_s']:.1f} cases/min; wall {r['wall_s']:.1f} s with start-up",
                flush=True,
            )
        first, last = args.processes[0], args.processes[-1]
        if last != first:
            ratio = results[first]["batch_s"] / results[last]["batch_s"]
            print(f"speed-up {last} vs {first} process(es): x{ratio:.2f} (batch time)")
        if args.large:
            prompts = make_cases(Path(tmp) / "large", args.large, large=True)
            r = run_batch(prompts, Path(tmp) / "out_large", 1)
            print(
                f"{args.large} case(s) 512x512x300, 1 process: batch {r['batch_s']:.1f} s "
                f"({r['batch_s'] / args.large:.1f} s per case); peak RSS {r['peak_mb']:.0f} MB"
            )


if __name__ == "__main__":
    main()
