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
"""Batch inference as users run it: bad cases isolated, the report, restart after a kill, two gloo ranks on the CPU
(``batch_inference.json`` and ``multi_gpu_batch_inference.json`` under torchrun), and the single-request writer's
refusal before any work."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from conftest import BUNDLE, DATA

DEMO_MODEL = BUNDLE / "models" / "demo_model.pt"
BATCH = ["configs/inference.json", "configs/batch_inference.json"]
MULTI = BATCH + ["configs/multi_gpu_batch_inference.json"]
CT, MR = DATA / "totalsegmentator" / "example_ct_sm.nii.gz", DATA / "totalsegmentator" / "example_mr_sm.nii.gz"


def bundle_run(
    configs: list[str], *args: str, ranks: int = 0, **popen
) -> subprocess.CompletedProcess | subprocess.Popen:
    """``monai.bundle run`` of ``configs`` from the bundle folder; under torchrun with ``ranks`` gloo processes when
    ``ranks`` > 0; a started ``Popen`` (in its own process group) when ``popen`` options are given."""
    files = "[" + ",".join(f"'{c}'" for c in configs) + "]"
    cmd = [sys.executable]
    if ranks:
        cmd += ["-m", "torch.distributed.run", "--standalone", "--nnodes=1", f"--nproc_per_node={ranks}"]
    cmd += ["-m", "monai.bundle", "run", "--config_file", files, "--weights", str(DEMO_MODEL), *args]
    # one thread per process, as torchrun gives each worker: the same float arithmetic in both, so an untrained
    # network's probabilities near 0.5 fall on the same side of the threshold
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if popen:
        return subprocess.Popen(cmd, cwd=BUNDLE, env=env, start_new_session=True, **popen)
    return subprocess.run(
        cmd, cwd=BUNDLE, env=env, capture_output=True, encoding="utf-8", errors="replace", timeout=900
    )


def make_cases(root: Path, prompts: dict[str, tuple[Path | None, dict]]) -> list[str]:
    """Copy each case's image into ``root/images`` (``None``: a file that is not an image) and write the prompts
    file ``root/prompts.json``; the options of a batch over them."""
    images = root / "images"
    images.mkdir(parents=True)
    for name, (source, _) in prompts.items():
        if source is None:
            (images / name).write_text("not an image", encoding="utf-8")
        else:
            shutil.copy(source, images / name)
    (root / "prompts.json").write_text(json.dumps({name: p for name, (_, p) in prompts.items()}), encoding="utf-8")
    return ["--input_dir", str(images), "--prompts_file", str(root / "prompts.json"), "--max_windows", "2"]


def click(*point: int) -> dict:
    return {"points": [list(point)], "point_labels": [1]}


def rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def voxels(path: Path) -> np.ndarray:
    return np.asarray(nib.load(str(path)).dataobj)


SIX = {
    "a_ct.nii.gz": (CT, click(77, 35, 13)),
    "b_mr.nii.gz": (MR, {"objects": {"liver": {**click(40, 30, 10), "label": 5}}}),
    "c_ct.nii.gz": (CT, click(60, 40, 20)),
    "d_unreadable.nii.gz": (None, click(5, 5, 5)),
    "e_outside.nii.gz": (MR, click(5, 5, 500)),
    "f_mr.nii.gz": (MR, click(50, 40, 12)),
}
GOOD = ["a_ct", "b_mr", "c_ct", "f_mr"]


@pytest.mark.slow
def test_two_ranks_isolate_bad_cases_and_equal_one_process(tmp_path):
    options = make_cases(tmp_path, SIX)
    one = bundle_run(BATCH, *options, "--output_dir", str(tmp_path / "one"))
    two = bundle_run(MULTI, *options, "--output_dir", str(tmp_path / "two"), ranks=2)
    for done, out in ((one, tmp_path / "one"), (two, tmp_path / "two")):
        assert done.returncode == 1, done.stderr[-3000:]
        assert "error: 2 of 6 cases failed, listed with their reasons in" in done.stderr
        assert "batch: 6 cases on" in done.stdout and "4 done, 0 skipped (complete from an earlier run), 2 failed" in (
            done.stdout
        )
        assert sorted(p.name for p in out.glob("*_seg.nii.gz")) == [f"{c}_seg.nii.gz" for c in GOOD]
        assert not list(out.glob(".*")), "no temporary file is left"
        assert ".partial-" not in done.stdout + done.stderr, "the log names the final files"
        failures = rows(out / "batch_failures.csv")
        assert [f["case"] for f in failures] == ["d_unreadable.nii.gz", "e_outside.nii.gz"]
        assert "is not a gzip file" in failures[0]["reason"] and "lies outside the image" in failures[1]["reason"]
        report = rows(out / "batch_report.csv")
        assert [r["case"] for r in report] == list(SIX), "one row per case, in the batch's order, none twice"
        assert [r["status"] for r in report] == ["done", "done", "done", "failed", "failed", "done"]
        for r in report:
            if r["status"] == "done":
                objects = json.loads((out / f"{r['case'].split('.')[0]}_objects.json").read_text(encoding="utf-8"))[
                    "objects"
                ]
                assert r["objects"] == ";".join(o["name"] for o in objects)
                assert r["voxels"] == ";".join(str(o["voxels"]) for o in objects)
                assert [float(v) for v in r["iou"].split(";")] == pytest.approx([o["iou"] for o in objects], abs=1e-4)
                assert float(r["seconds"]) > 0
    assert "rank 1/2:" in two.stdout + two.stderr and "rank 1/" not in one.stdout + one.stderr
    for case in GOOD:  # the two ranks' outputs are the one process's, voxel for voxel
        a, b = nib.load(str(tmp_path / "one" / f"{case}_seg.nii.gz")), nib.load(
            str(tmp_path / "two" / f"{case}_seg.nii.gz")
        )
        np.testing.assert_array_equal(np.asarray(a.dataobj), np.asarray(b.dataobj))
        np.testing.assert_array_equal(a.affine, b.affine)
        assert np.asarray(a.dataobj).any()

    fail_fast = bundle_run(BATCH, *options, "--output_dir", str(tmp_path / "fast"), "--stop_on_error", "True")
    assert fail_fast.returncode == 1
    assert fail_fast.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "is not a gzip file" in fail_fast.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "fast" / "batch_report.csv").exists()
    assert (
        not (tmp_path / "fast" / "e_outside_seg.nii.gz").exists()
        and not (tmp_path / "fast" / "f_mr_seg.nii.gz").exists()
    )


def _wait_for_first_output(process: subprocess.Popen, out: Path, timeout: float = 600) -> list[Path]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        finished = list(out.glob("*_seg.nii.gz"))
        if finished:
            return finished
        time.sleep(0.02)
    raise AssertionError(f"no case finished (exit status {process.poll()})")


def _kill_run(pid: int) -> None:
    """SIGKILL to every process group of a torchrun run: torchrun's and each worker's (torchrun starts its workers
    in sessions of their own, so killing torchrun's group alone would leave them running)."""
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            todo += [int(c) for c in (task / "children").read_text(encoding="utf-8").split()]
    groups = set()
    for member in tree:
        try:
            groups.add(os.getpgid(member))
        except ProcessLookupError:
            pass
    for group in groups:
        os.killpg(group, signal.SIGKILL)


@pytest.mark.slow
def test_restart_after_a_kill_completes_the_rest_and_redoes_nothing(tmp_path):
    """Five cases (odd) on two ranks; SIGKILL to the whole run (every process group) after the first finished case;
    the rerun skips the finished cases (same file, same modification time) and does each of the others once."""
    five = {  # the later cases take several windows: the kill comes while they run
        "a_ct.nii.gz": (CT, click(77, 35, 13)),
        "b_ct.nii.gz": (CT, click(60, 40, 20)),
        "c_mr.nii.gz": (MR, {"objects": {"liver": {**click(40, 30, 10), "label": 5}}}),
        "d_mr.nii.gz": (MR, {"objects": {"liver": {**click(40, 30, 10), "label": 5}}}),
        "e_mr.nii.gz": (MR, {"objects": {"liver": {**click(40, 30, 10), "label": 5}}}),
    }
    options = make_cases(tmp_path, five) + ["--output_dir", str(tmp_path / "out"), "--progress_interval", "0"]
    options[options.index("--max_windows") + 1] = "8"
    log = open(tmp_path / "killed.log", "w", encoding="utf-8")
    process = bundle_run(MULTI, *options, ranks=2, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_for_first_output(process, tmp_path / "out")
    finally:
        _kill_run(process.pid)
        process.wait()
        log.close()
    finished = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in (tmp_path / "out").glob("*_seg.nii.gz")}
    assert 1 <= len(finished) < 5, f"the kill came after the first finished case and before the last: {finished}"
    unfinished = [c for c in five if f"{c.split('.')[0]}_seg.nii.gz" not in finished]
    # a half-written output of an earlier run (the writer's temporary name) is never taken for a result
    stale = tmp_path / "out" / f".{unfinished[0].split('.')[0]}_seg.partial-99999.nii.gz"
    stale.write_bytes(b"half")

    again = bundle_run(MULTI, *options, ranks=2)
    assert again.returncode == 0, again.stderr[-3000:]
    log_text = again.stdout + again.stderr
    assert "rank 0/2: 3/3 cases" in log_text and "rank 1/2: 2/2 cases" in log_text, "3 + 2 cases: none left out"
    report = rows(tmp_path / "out" / "batch_report.csv")
    assert [r["case"] for r in report] == list(five), "each case once"
    for r in report:
        seg = f"{r['case'].split('.')[0]}_seg.nii.gz"
        assert r["status"] == ("skipped" if seg in finished else "done"), r
        assert r["objects"] and r["voxels"], "a skipped case's figures come from its report"
    for name, (inode, mtime) in finished.items():
        stat = (tmp_path / "out" / name).stat()
        assert (stat.st_ino, stat.st_mtime_ns) == (inode, mtime), f"{name} was redone"
    redone = nib.load(str(tmp_path / "out" / f"{unfinished[0].split('.')[0]}_seg.nii.gz"))
    assert redone.shape == nib.load(str(five[unfinished[0]][0])).shape
    assert f"batch: 5 cases on 2 process(es): {5 - len(finished)} done, {len(finished)} skipped" in again.stdout

    redo = bundle_run(MULTI, *options, "--overwrite", "True", ranks=2)
    assert redo.returncode == 0, redo.stderr[-3000:]
    assert [r["status"] for r in rows(tmp_path / "out" / "batch_report.csv")] == ["done"] * 5
    for name, (_, mtime) in finished.items():
        assert (tmp_path / "out" / name).stat().st_mtime_ns != mtime, f"--overwrite True redid {name}"


def test_an_existing_output_is_refused_before_any_segmentation(tmp_path):
    """The single-request command line: the log names the final file; a second run stops before segmenting."""
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", "configs/inference.json"]
    cmd += ["--weights", str(DEMO_MODEL), "--output_dir", str(tmp_path / "out"), "--max_windows", "1"]
    first = subprocess.run(cmd, cwd=BUNDLE, capture_output=True, encoding="utf-8", errors="replace")
    assert first.returncode == 0, first.stderr[-3000:]
    log = first.stdout + first.stderr
    assert f"wrote {tmp_path / 'out' / 'example_ct_seg.nii.gz'}" in log and ".partial-" not in log
    assert "segmented 2 object(s)" in log
    again = subprocess.run(cmd, cwd=BUNDLE, capture_output=True, encoding="utf-8", errors="replace")
    assert again.returncode == 1
    assert again.stderr.strip().splitlines()[-1].startswith(
        "error: "
    ) and "exists; remove it or pass --overwrite True" in (again.stderr)
    assert "segmented" not in again.stdout + again.stderr, "refused before any segmentation work"


# An untrained small network with class prompts: automatic mode needs one, and the test compares runs, not masks.
CLASS_PROMPT_NET = (
    "$@scripts.load_network(@ckpt_dir, untrained=True, num_class_prompts=8, encoder_embed_dim=48, encoder_depth=2, "
    "encoder_num_heads=2, encoder_global_attn_indexes=[1], prompt_embed_dim=48, decoder_mlp_dim=64)"
)


@pytest.mark.slow
def test_automatic_mode_on_two_ranks_equals_one_process(tmp_path):
    """``label_prompt`` requests from a prompts file, three cases (odd) on two ranks."""
    three = {
        "a_ct.nii.gz": (CT, {"label_prompt": [2, 5]}),
        "b_mr.nii.gz": (MR, {"label_prompt": [5]}),
        "c_ct.nii.gz": (CT, {"label_prompt": 2}),
    }
    options = make_cases(tmp_path, three) + ["--network_def", CLASS_PROMPT_NET]
    one = bundle_run(BATCH, *options, "--output_dir", str(tmp_path / "one"))
    two = bundle_run(MULTI, *options, "--output_dir", str(tmp_path / "two"), ranks=2)
    for done, out in ((one, tmp_path / "one"), (two, tmp_path / "two")):
        assert done.returncode == 0, done.stderr[-3000:]
        report = rows(out / "batch_report.csv")
        assert [(r["case"], r["objects"], r["status"]) for r in report] == [
            ("a_ct.nii.gz", "2;5", "done"),
            ("b_mr.nii.gz", "5", "done"),
            ("c_ct.nii.gz", "2", "done"),
        ]
        for r in report:
            labels = voxels(out / f"{r['case'].split('.')[0]}_seg.nii.gz")
            assert r["voxels"] == ";".join(str(int((labels == int(c)).sum())) for c in r["objects"].split(";"))
        assert rows(out / "batch_failures.csv") == []
    assert "rank 0/2: 2/2 cases" in two.stdout + two.stderr and "rank 1/2: 1/1 cases" in two.stdout + two.stderr
    for case in three:
        name = f"{case.split('.')[0]}_seg.nii.gz"
        np.testing.assert_array_equal(voxels(tmp_path / "one" / name), voxels(tmp_path / "two" / name))
