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
"""onnxruntime against torch on this CPU: the image encoder per 128^3 window and one click, in one process.

Usage (from the repository root): ``python benchmarks/bench_onnx.py [--repeats 5] [--clicks 30] [--threads 2]``.
The full-size network with random weights (as ``bench_network.py``) is exported with ``scripts.onnx_export`` into a
temporary folder; both runtimes then take the same window and the same click, alternating, on the same number of
threads. One click is the prompt encoder + decoder + trilinear upsampling to 128^3 + threshold, as in
``bench_network.py``. The export's own time is printed too (a one-off cost).
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bundle"))
from scripts.networks import OnnxSAMMed3D, SAMMed3D  # noqa: E402
from scripts.onnx_export import export_onnx  # noqa: E402


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what ``platform`` knows."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def load() -> str:
    """The 1, 5 and 15 minute load averages."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def alternate(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, list[float]]:
    """Time each function ``repeats`` times, taking turns, after one warm-up call each (so load drifts hit both)."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def summary(times: list[float], unit: float = 1.0) -> str:
    t = [x * unit for x in times]
    return f"median {statistics.median(t):.3f}  min {min(t):.3f}  max {max(t):.3f}  (n={len(t)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5, help="timed encoder passes per runtime")
    parser.add_argument("--clicks", type=int, default=30, help="timed single-click decodes per runtime")
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads of both runtimes")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    import onnxruntime

    print(
        f"machine: {cpu_model()}, {os.cpu_count()} CPUs, {args.threads} threads per runtime; torch {torch.__version__}, "
        f"onnxruntime {onnxruntime.__version__}; load average at start {load()}"
    )
    torch.manual_seed(0)
    network = SAMMed3D().eval()
    image = torch.randn(1, 1, 128, 128, 128)
    points, labels = torch.tensor([[[70.0, 50, 60]]]), torch.tensor([[1]])
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        export_onnx(network, folder, verify=False)
        print(f"export of the four ONNX files (s): {time.perf_counter() - start:.1f}")
        onnx = OnnxSAMMed3D(folder, threads=args.threads)
        with torch.no_grad():
            embedding = network.encode(image)
            low = torch.zeros(1, 1, 32, 32, 32)
            difference = (onnx.encode(image) - embedding).abs().max().item()
            encoder = alternate(
                {"torch": lambda: network.encode(image), "onnxruntime": lambda: onnx.encode(image)}, args.repeats
            )
            clicks = alternate(
                {
                    name: (lambda net=net: net.upsample(net.decode(embedding, points, labels, low)[0]) > 0)
                    for name, net in (("torch", network), ("onnxruntime", onnx))
                },
                args.clicks,
            )
    for name in ("torch", "onnxruntime"):
        print(f"encoder per window, {name:11s} (s): {summary(encoder[name])}")
    ratio = statistics.median(encoder["torch"]) / statistics.median(encoder["onnxruntime"])
    print(f"encoder, median torch / median onnxruntime: {ratio:.2f}x")
    for name in ("torch", "onnxruntime"):
        print(f"one click, {name:11s} (ms): {summary(clicks[name], 1000)}")
    ratio = statistics.median(clicks["torch"]) / statistics.median(clicks["onnxruntime"])
    print(f"one click, median torch / median onnxruntime: {ratio:.2f}x")
    print(f"max |onnxruntime - torch| on the image embedding: {difference:.2e}")
    print(f"load average at the end: {load()}")


if __name__ == "__main__":
    main()
