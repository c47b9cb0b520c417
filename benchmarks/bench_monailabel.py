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
"""MONAI Label round trips against the same work in-process, in one run: request sent -> answer file received.

Usage (from the repository root, with the Python of README's MONAI Label install):
``python benchmarks/bench_monailabel.py [--repeats 8]``. Every figure comes with its in-process reference from the same
run and machine:

* **Full-size network** (random weights: its cost does not depend on their values), synthetic CT-like volumes at
  0.8 mm, 256x256x160 and 512x512x300, one window per object (random masks would open windows at random): a first
  click on an image the server has not seen (read, prepare, encode, decode, write, send) against one encoder pass;
  further clicks with 3D Slicer's parameters (``.nii.gz``, multipart) and OHIF's (raw ``.nrrd``) against the
  session's click in-process. A random network's mask fills its window: the answers carry an object of 19 cm.
* **Demo model** (real masks decide the windows; default ``max_windows`` 8), the shipped CT and the same CT at
  512x512x300: the first click of a new object on the liver (followed into 4 windows, all encoded) against the
  kidney (one window), in-process and over HTTP; further clicks on both at 512x512x300 in both viewers' formats.
* The server's resident memory with 1, 5 and 20 images cached (the default cache bound).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import psutil
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "bundle"))
sys.path.insert(0, str(HERE))
from bench_inference import synthetic_ct  # noqa: E402
from monailabel.client import MONAILabelClient  # noqa: E402
from monailabel_server import ROOT, Server, ohif_click, slicer_click  # noqa: E402

from scripts import InteractiveSession, load_network  # noqa: E402
from scripts.networks import SAMMed3D  # noqa: E402

SYNTHETIC = {"ct256": (256, 256, 160), "ct512": (512, 512, 300)}
DEMO_CT = ROOT / "bundle" / "sample_data" / "example_ct.nii.gz"
LARGE = (512, 512, 300)
# README's clicks on the shipped CT: the right kidney (one window) and the liver (four)
KIDNEY, LIVER = (86, 43, 74), (86, 47, 100)
MEMORY_POINTS = (1, 5, 20)


def ms(values: list[float]) -> str:
    return f"median {statistics.median(values) * 1e3:.0f} ms (min {min(values) * 1e3:.0f}, n={len(values)})"


def beyond(many: list[float], one: list[float], windows: int) -> str:
    """What a click over several windows costs beyond as many one-window clicks (medians)."""
    return f"{(statistics.median(many) - windows * statistics.median(one)) * 1e3:.0f} ms"


def large_demo_ct(path: Path) -> tuple[float, ...]:
    """The shipped CT's voxels repeated to 512x512x300 over the same extent (int16); returns the scale per axis."""
    ct = nib.load(str(DEMO_CT))
    data = np.asarray(ct.dataobj).astype(np.int16)
    index = [np.minimum((np.arange(n) * m) // n, m - 1) for n, m in zip(LARGE, data.shape)]
    affine = ct.affine @ np.diag([m / n for n, m in zip(LARGE, data.shape)] + [1.0])
    nib.save(nib.Nifti1Image(data[np.ix_(*index)], affine), str(path))
    return tuple(n / m for n, m in zip(LARGE, data.shape))


def further_clicks(centre: list[int], repeats: int) -> list[tuple[list, list]]:
    """(foreground, background) of each further request: negative clicks added one by one near the first click."""
    steps, background = [], []
    for r in range(repeats):
        background.append([centre[0] + 3 + r, centre[1] + 2, centre[2]])
        steps.append(([centre], list(background)))
    return steps


def in_process_clicks(network, path: Path, steps: list[tuple[list, list]], max_windows: int) -> dict:
    """The same clicks in a session in this process: first click (read, prepare, encode, decode) and further ones."""
    start = time.perf_counter()
    session = InteractiveSession(network, str(path), max_windows=max_windows)
    session.click(steps[0][0][0])
    first = time.perf_counter() - start
    further = []
    for _, background in steps:
        start = time.perf_counter()
        session.click(background[-1], positive=False)
        further.append(time.perf_counter() - start)
    return {"first": first, "further": further, "voxels": int(session.mask.sum())}


def encoder_pass(network) -> list[float]:
    window = torch.randn(1, 1, 128, 128, 128)
    times = []
    for _ in range(3):
        start = time.perf_counter()
        with torch.no_grad():
            network.encode(window)
        times.append(time.perf_counter() - start)
    return times


def synthetic_part(workdir: Path, repeats: int) -> None:
    studies = workdir / "studies"
    studies.mkdir()
    for name, shape in SYNTHETIC.items():
        synthetic_ct(shape, studies / f"{name}.nii.gz")
    for i in range(max(MEMORY_POINTS)):
        (studies / f"memory{i:02d}.nii.gz").write_bytes((studies / "ct256.nii.gz").read_bytes())
    torch.manual_seed(0)
    network = SAMMed3D().eval()
    torch.save(network.state_dict(), workdir / "random.pt")
    print(
        f"full-size network (random weights), max_windows 1; one encoder pass in-process: {ms(encoder_pass(network))}"
    )
    server = Server(workdir, studies, ["weights", str(workdir / "random.pt"), "max_windows", "1"])
    try:
        slicer = MONAILabelClient(server.url, client_id="slicer")
        for name, shape in SYNTHETIC.items():
            centre = [s // 2 for s in shape]
            steps = further_clicks(centre, repeats)
            ours = in_process_clicks(network, studies / f"{name}.nii.gz", steps, max_windows=1)
            first, _ = slicer_click(slicer, name, [centre], [], "object")
            nifti = [slicer_click(slicer, name, fg, bg, "object")[0] for fg, bg in steps]
            scratch = workdir / "answer.nrrd"
            ohif = [ohif_click(server.url, name, fg, bg, scratch)[0] for fg, bg in steps]
            print(f"  {name} {shape}, object of {ours['voxels']:,} voxels:")
            print(f"    first click over HTTP {first:.2f} s (in-process: {ours['first']:.2f} s)")
            print(f"    further click, Slicer .nii.gz: {ms(nifti)}; OHIF raw .nrrd: {ms(ohif)}")
            print(f"    further click in-process (session.click): {ms(ours['further'])}")
        process = psutil.Process(server.proc.pid)
        print("  server memory (RSS) with images of 256x256x160 cached besides the two above:")
        cached = 0
        for count in MEMORY_POINTS:
            while cached < count:
                slicer_click(slicer, f"memory{cached:02d}", [[128, 128, 80]], [], "object")
                cached += 1
            print(f"    {count:2d} image(s): {process.memory_info().rss / 2**20:,.0f} MiB")
    finally:
        server.stop()


def new_object_clicks(session: InteractiveSession, click: tuple[int, ...], repeats: int) -> tuple[list[float], int]:
    times = []
    for _ in range(repeats):
        session.reset()
        start = time.perf_counter()
        session.click(list(click))
        times.append(time.perf_counter() - start)
    return times, len(session.track.windows)


def demo_part(workdir: Path, repeats: int) -> None:
    studies = workdir / "demo_studies"
    studies.mkdir()
    (studies / "demo_ct.nii.gz").write_bytes(DEMO_CT.read_bytes())
    scale = large_demo_ct(studies / "demo_ct512.nii.gz")
    network = load_network(ROOT / "bundle" / "models")
    print("demo model (real masks), max_windows 8, the shipped CT: a new object's first click, windows encoded")
    session = InteractiveSession(network, str(DEMO_CT))
    for click in (LIVER, KIDNEY):  # encode their windows
        session.reset()
        session.click(list(click))
    liver, liver_windows = new_object_clicks(session, LIVER, repeats)
    kidney, _ = new_object_clicks(session, KIDNEY, repeats)
    server = Server(workdir, studies, [])
    try:
        slicer = MONAILabelClient(server.url, client_id="demo")
        for click in (LIVER, KIDNEY):
            slicer_click(slicer, "demo_ct", [list(click)], [], "warm")
        http = {}
        for name, click in (("liver", LIVER), ("kidney", KIDNEY)):
            http[name] = [
                slicer_click(slicer, "demo_ct", [list(click)], [], f"{name}_{r}")[0] for r in range(repeats)
            ]  # each label a new object
        print(f"  in-process: liver ({liver_windows} windows) {ms(liver)}; kidney (1 window) {ms(kidney)}")
        print(f"    liver - {liver_windows} x kidney = {beyond(liver, kidney, liver_windows)}")
        print(f"  over HTTP (Slicer .nii.gz): liver {ms(http['liver'])}; kidney {ms(http['kidney'])}")
        print(f"    liver - {liver_windows} x kidney = {beyond(http['liver'], http['kidney'], liver_windows)}")
        print("  the same CT at 512x512x300: further clicks (negative, near the first)")
        large = InteractiveSession(network, str(studies / "demo_ct512.nii.gz"))
        for name, click in (("kidney", KIDNEY), ("liver", LIVER)):
            centre = [round(v * s) for v, s in zip(click, scale)]
            steps = further_clicks(centre, repeats)
            large.reset()
            large.click(centre)
            ours = []
            for _, background in steps:
                start = time.perf_counter()
                large.click(background[-1], positive=False)
                ours.append(time.perf_counter() - start)
            slicer_click(slicer, "demo_ct512", [centre], [], name)
            nifti = [slicer_click(slicer, "demo_ct512", fg, bg, name)[0] for fg, bg in steps]
            ohif_click(server.url, "demo_ct512", [centre], [], workdir / "answer.nrrd")
            ohif = [ohif_click(server.url, "demo_ct512", fg, bg, workdir / "answer.nrrd")[0] for fg, bg in steps]
            windows = len(large.track.windows)
            print(f"    {name} ({windows} window(s), {int(large.mask.sum()):,} voxels): in-process {ms(ours)}")
            print(f"      Slicer .nii.gz {ms(nifti)}; OHIF raw .nrrd {ms(ohif)}")
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=8, help="timed clicks of each kind")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cpu = next(
        (line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo", encoding="utf-8") if "model name" in line), "?"
    )
    print(
        f"{cpu}, {psutil.cpu_count()} CPU(s), torch {torch.__version__}, {args.threads} threads; load {psutil.getloadavg()}"
    )
    with tempfile.TemporaryDirectory(prefix="bench_monailabel_") as workdir:
        synthetic_part(Path(workdir), args.repeats)
        demo_part(Path(workdir), args.repeats)
    print(f"load average at the end: {psutil.getloadavg()}")


if __name__ == "__main__":
    main()
