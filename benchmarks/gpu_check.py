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
"""The GPU check in one run: the GPU tests (``pytest -m gpu``), then every GPU figure beside the model card's CPU one.

Usage (from the repository root, on a CUDA machine): ``python benchmarks/gpu_check.py [--repeats 5] [--skip-tests]``.
Without CUDA it says so and exits 0. Printed first: the GPU's name, torch, CUDA and cuDNN versions. Figures (full-size
network with random weights unless said; peak GPU memory of each, ``torch.cuda.max_memory_allocated`` in this
process, the device's used memory polled with ``nvidia-smi`` for child processes):

* image encoder per 128^3 window: float32 (TF32 off), bf16 and fp16 autocast, channels-last input, ``torch.compile``,
  each with its largest difference to float32 (a setting that changes the outputs is not one to ship);
* one click (prompt encoder + decoder + upsampling + threshold), float32 and bf16;
* a whole request, 512x512x300 at 0.8 mm with 3 objects (``inference.json`` in process), and a further session click;
* a SegFM step with process start, 1 and 3 classes (``bench_segfm.py``);
* batch cases per minute (``bench_batch.py``, demo model, one process);
* training iterations per second (11 rounds, AMP) at batch 1 and at the largest batch that fits.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bundle"))
sys.path.insert(0, str(ROOT / "benchmarks"))

# The model card's CPU figures of the same measurements (2 vCPU Xeon, 2 threads; docs/README.md, Performance).
CPU_FIGURES = {
    "encoder": "0.62 s",
    "click": "23.5 ms",
    "request_512": "5.98 s",
    "further_click_512": "54 ms",
    "segfm_1": "step 1 31.1 s, step 2 28.1 s",
    "segfm_3": "step 1 102.5 s, step 2 61.8 s",
    "batch": "64.0 cases/min (1 process)",
    "training": "0.23 it/s (batch 1, 11 rounds)",
}


def line(what: str, gpu: str, cpu: str | None = None) -> str:
    """One figure: the GPU's, and the model card's CPU figure of the same command when there is one."""
    return f"{what}: {gpu}" + (f"  | CPU (model card): {cpu}" if cpu else "")


def median_time(fn: Callable[[], object], repeats: int, sync: Callable[[], None] = lambda: None) -> float:
    """Median wall time of ``fn`` over ``repeats`` runs after one warm-up (``sync`` waits for the device)."""
    fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def is_out_of_memory(error: BaseException) -> bool:
    return isinstance(error, torch.cuda.OutOfMemoryError) or "out of memory" in str(error).lower()


def largest_batch(step: Callable[[int], object], limit: int = 256) -> int:
    """The largest batch size, doubling from 1 up to ``limit``, for which ``step(batch)`` runs without running out of
    memory (0 if even 1 does not fit).

    Args:
        step: runs one iteration at the given batch size; raises an out-of-memory error when it does not fit.
        limit: the largest size tried.
    """
    fits, batch = 0, 1
    while batch <= limit:
        try:
            step(batch)
        except (RuntimeError, torch.cuda.OutOfMemoryError) as error:
            if not is_out_of_memory(error):
                raise
            break
        finally:
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        fits, batch = batch, batch * 2
    return fits


class GpuMemoryPoll:
    """The device's peak used memory (MiB) while a child process runs, polled with ``nvidia-smi``."""

    def __enter__(self) -> GpuMemoryPoll:
        self.peak, self.base, self._stop = 0, self._used(), threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @staticmethod
    def _used() -> int:
        query = ["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits", "--id=0"]
        try:
            return int(subprocess.run(query, capture_output=True, encoding="utf-8", timeout=10).stdout.split()[0])
        except (OSError, ValueError, IndexError, subprocess.TimeoutExpired):
            return 0

    def _poll(self) -> None:
        while not self._stop.wait(0.2):
            self.peak = max(self.peak, self._used())

    def summary(self) -> str:
        return f"peak GPU memory {self.peak - self.base} MiB above the {self.base} MiB in use before"


def peak_mib() -> str:
    return f"peak GPU memory {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB"


def run_tests() -> int:
    """``pytest -m gpu``: the GPU tests, with their printed counts (near-zero voxels, Dice)."""
    command = [sys.executable, "-m", "pytest", str(ROOT / "tests" / "test_gpu.py"), "-m", "gpu", "-q", "-rA", "-s"]
    print("$ " + " ".join(command), flush=True)
    return subprocess.run(command, cwd=ROOT).returncode


def encoder_and_click(repeats: int) -> None:
    from scripts.networks import SAMMed3D

    sync = torch.cuda.synchronize
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    torch.manual_seed(0)
    network = SAMMed3D().cuda().eval()
    image = torch.randn(1, 1, 128, 128, 128, device="cuda")
    with torch.no_grad():
        reference = network.encode(image)
        settings = {
            "float32": (lambda: network.encode(image), None),
            "bf16 autocast": (lambda: network.encode(image), torch.bfloat16),
            "fp16 autocast": (lambda: network.encode(image), torch.float16),
            "float32 channels-last": (lambda: network.encode(image.to(memory_format=torch.channels_last_3d)), None),
        }
        compiled = torch.compile(network.image_encoder)  # compiles at its first call, inside the timing's warm-up
        settings["float32 torch.compile"] = (lambda: compiled(image), None)
        for name, (fn, dtype) in settings.items():
            torch.cuda.reset_peak_memory_stats()
            try:
                with torch.autocast("cuda", dtype=dtype or torch.float32, enabled=dtype is not None):
                    seconds = median_time(fn, repeats, sync)
                    difference = (fn().float() - reference).abs().max().item()
            except Exception as error:  # a setting that fails here (a compiler missing) is a finding, not the end
                print(line(f"image encoder per window, {name}", f"failed: {type(error).__name__}: {error}"))
                continue
            print(
                line(
                    f"image encoder per window, {name}",
                    f"{seconds * 1000:.1f} ms, max |diff| to float32 {difference:.2e}, {peak_mib()}",
                    CPU_FIGURES["encoder"] if name == "float32" else None,
                )
            )
        points, labels = torch.tensor([[[70.0, 50, 60]]], device="cuda"), torch.tensor([[1]], device="cuda")
        low = torch.zeros(1, 1, 32, 32, 32, device="cuda")
        for name, dtype in (("float32", None), ("bf16 autocast", torch.bfloat16)):
            torch.cuda.reset_peak_memory_stats()
            with torch.autocast("cuda", dtype=dtype or torch.float32, enabled=dtype is not None):
                seconds = median_time(
                    lambda: network.upsample(network.decode(reference, points, labels, low)[0]) > 0, repeats * 6, sync
                )
            print(line(f"one click, {name}", f"{seconds * 1000:.2f} ms, {peak_mib()}", CPU_FIGURES["click"]))


def request_and_further_click(repeats: int) -> None:
    from bench_inference import synthetic_ct
    from monai.bundle import ConfigWorkflow

    from scripts import InteractiveSession
    from scripts.networks import SAMMed3D

    with tempfile.TemporaryDirectory() as folder:
        image = Path(folder) / "ct.nii.gz"
        synthetic_ct((512, 512, 300), image)
        clicks = [[256 + 60 * (i - 1), 256, 150] for i in range(3)]
        objects = {f"object{i}": {"points": [c], "point_labels": [1]} for i, c in enumerate(clicks)}
        times = []
        torch.cuda.reset_peak_memory_stats()
        for r in range(repeats):
            workflow = ConfigWorkflow(
                workflow_type="infer",
                config_file=str(ROOT / "bundle" / "configs" / "inference.json"),
                bundle_root=str(ROOT / "bundle"),
                output_dir=str(Path(folder) / f"out{r}"),
                ckpt_dir=str(Path(folder) / "no_weights"),
                max_windows=1,
                untrained=True,
                input_dict={"image": str(image), "objects": objects},
            )
            workflow.initialize()
            start = time.perf_counter()
            workflow.run()
            torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
            workflow.finalize()
        print(
            line(
                "whole request 512x512x300, 3 objects (bundle default: amp)",
                f"median {statistics.median(times):.2f} s (n={len(times)}), {peak_mib()}",
                CPU_FIGURES["request_512"],
            )
        )
        torch.cuda.reset_peak_memory_stats()
        session = InteractiveSession(SAMMed3D().cuda().eval(), str(image), max_windows=1)
        session.click(clicks[0])
        step = iter(range(1, 1000))

        def further() -> None:
            n = next(step)
            session.click([clicks[0][0] + n % 5, clicks[0][1], clicks[0][2]], positive=n % 2 == 0)

        seconds = median_time(further, repeats, torch.cuda.synchronize)
        print(
            line(
                "further session click, 512x512x300",
                f"{seconds * 1000:.1f} ms, {peak_mib()}",
                CPU_FIGURES["further_click_512"],
            )
        )


def child_benchmark(script: str, args: list[str], keep: Callable[[str], bool]) -> None:
    """Run another benchmark script, print its figure lines, with the device's peak memory over the run."""
    command = [sys.executable, str(ROOT / "benchmarks" / script), *args]
    with GpuMemoryPoll() as memory:
        done = subprocess.run(command, cwd=ROOT, capture_output=True, encoding="utf-8", errors="replace")
    if done.returncode != 0:
        print(line(script, f"failed (exit {done.returncode}): {done.stderr[-1500:]}"))
        return
    for text in done.stdout.splitlines():
        if keep(text):
            print(f"{script}: {text.strip()}")
    print(line(f"{script} {' '.join(args)}", memory.summary()))


def training(repeats: int) -> None:
    from monai.losses import DiceCELoss

    from scripts.networks import SAMMed3D
    from scripts.training import ClickSimulation, RoundsLoss

    torch.manual_seed(0)
    simulation = ClickSimulation(SAMMed3D().cuda(), num_rounds=11).train()
    loss_function = RoundsLoss(DiceCELoss(sigmoid=True, squared_pred=True))
    optimizer = torch.optim.AdamW(simulation.parameters(), lr=1e-5)
    scaler = torch.amp.GradScaler("cuda")

    def step(batch: int) -> None:
        image = torch.randn(batch, 1, 128, 128, 128, device="cuda")
        label = torch.zeros_like(image)
        label[:, :, 40:90, 40:90, 40:90] = 1
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.float16):
            loss = loss_function(simulation(image, label), label)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    torch.cuda.reset_peak_memory_stats()
    seconds = median_time(lambda: step(1), repeats, torch.cuda.synchronize)
    print(line("training, batch 1, 11 rounds, AMP", f"{1 / seconds:.2f} it/s, {peak_mib()}", CPU_FIGURES["training"]))
    batch = largest_batch(step)
    if batch > 1:
        torch.cuda.reset_peak_memory_stats()
        seconds = median_time(lambda: step(batch), repeats, torch.cuda.synchronize)
        print(line(f"training, batch {batch} (largest power of 2 that fits)", f"{1 / seconds:.2f} it/s, {peak_mib()}"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-tests", action="store_true", help="figures only")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print(f"no CUDA device here (torch {torch.__version__}, CUDA build {torch.version.cuda}): nothing to run.")
        return 0
    print(
        f"GPU: {torch.cuda.get_device_name(0)}, {torch.cuda.get_device_properties(0).total_memory / 2**30:.0f} GiB; "
        f"torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}",
        flush=True,
    )
    status = 0 if args.skip_tests else run_tests()
    encoder_and_click(args.repeats)
    request_and_further_click(max(1, args.repeats // 2))
    child_benchmark("bench_segfm.py", ["--classes", "1", "3", "--untrained"], lambda t: "|" in t or "start" in t)
    print(line("SegFM step, CPU (model card)", "", f"1 class: {CPU_FIGURES['segfm_1']}; 3: {CPU_FIGURES['segfm_3']}"))
    child_benchmark("bench_batch.py", ["--cases", "8", "--processes", "1"], lambda t: "cases/min" in t)
    print(line("batch", "see the line above", CPU_FIGURES["batch"]))
    training(args.repeats)
    print(f"GPU tests: {'passed' if status == 0 else f'FAILED (pytest exit {status})'}")
    return status


if __name__ == "__main__":
    sys.exit(main())
