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
"""Speed and memory of the SAM-Med3D network on this machine: exact vs padded encoder, and one click of decoding.

Usage (from the repository root): ``python benchmarks/bench_network.py [--repeats 7] [--threads 2]``.
Both encoder forms run in one process on the same weights and input; peak memory of one encoder pass is measured in a
fresh child process per form (the high-water mark is per process).
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bundle"))
from scripts.networks import SAMMed3D  # noqa: E402


def peak_rss_mb() -> float:
    """Peak resident memory of this process (VmHWM: reset at exec, unlike ru_maxrss, which a child inherits)."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text(encoding="utf-8").splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def timed(fn, repeats: int) -> list[float]:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def summary(times: list[float], unit: float = 1.0) -> str:
    t = [x * unit for x in times]
    return f"median {statistics.median(t):.3f}  min {min(t):.3f}  max {max(t):.3f}  (n={len(t)})"


def memory_child(form: str) -> None:
    """One encoder pass in this process; prints the peak RSS before and after it as JSON."""
    model = SAMMed3D(padded_attention=form == "padded").eval()
    image = torch.randn(1, 1, 128, 128, 128)
    before = peak_rss_mb()
    with torch.no_grad():
        model.encode(image)
    print(json.dumps({"form": form, "peak_before_mb": before, "peak_after_mb": peak_rss_mb()}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=7, help="timed runs of each encoder form")
    parser.add_argument("--clicks", type=int, default=30, help="timed single-click decodes")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--memory-child", choices=["exact", "padded"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.memory_child:
        memory_child(args.memory_child)
        return

    print(
        f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}"
    )
    torch.manual_seed(0)
    model = SAMMed3D().eval()
    image = torch.randn(1, 1, 128, 128, 128)
    with torch.no_grad():
        exact_times = timed(lambda: model.encode(image), args.repeats)
        emb = model.encode(image)
        model.image_encoder.set_padded_attention(True)
        padded_times = timed(lambda: model.encode(image), args.repeats)
        emb_padded = model.encode(image)
        model.image_encoder.set_padded_attention(False)
        points, labels = torch.tensor([[[70.0, 50, 60]]]), torch.tensor([[1]])
        low = torch.zeros(1, 1, 32, 32, 32)

        def one_click() -> torch.Tensor:
            logits, _ = model.decode(emb, points, labels, low)
            return model.upsample(logits) > 0

        click_times = timed(one_click, args.clicks)
    ratio = statistics.median(padded_times) / statistics.median(exact_times)
    print(f"encoder exact  (s): {summary(exact_times)}")
    print(f"encoder padded (s): {summary(padded_times)}")
    print(f"encoder speed-up (median padded / median exact): {ratio:.1f}x")
    print(f"max |exact - padded| on the image embedding: {(emb - emb_padded).abs().max().item():.2e}")
    print(f"one click, prompt encoder + decoder + upsample to 128^3 + threshold (ms): {summary(click_times, 1000)}")
    for form in ("exact", "padded"):
        cmd = [sys.executable, __file__, "--memory-child", form, "--threads", str(args.threads)]
        child = json.loads(
            subprocess.run(
                cmd, capture_output=True, encoding="utf-8", errors="replace", check=True
            ).stdout.splitlines()[-1]
        )
        print(
            f"peak RSS, {form:6s} encoder pass in a fresh process (MB): {child['peak_after_mb']:.0f} "
            f"(model and input loaded: {child['peak_before_mb']:.0f})"
        )


if __name__ == "__main__":
    main()
