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
"""Every command that README.md and the model card show, run as written on a fresh copy of the repository.

The commands are read from the ``bash`` and ``python`` code blocks of the two documents, so a command added there
is run without touching this file. Three tables say how: ``PLACEHOLDERS`` maps the docs' stand-ins for the user's
own data to shipped files (the one table of placeholders), ``SHORTER`` overrides documented config ids to shorten
runs, and ``NOT_RUN`` / ``EXPECTED_ERRORS`` list the commands that need what this machine lacks (released weights,
a GPU, the internet), each with the words the docs must say next to the command. What a run must have done
(files written, figures printed) is read from the command itself: its ``--output_dir``, its request's labels.
"""

from __future__ import annotations

import ast
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from conftest import ROOT

DOCS = ("README.md", "bundle/docs/README.md")

# The docs' stand-ins for the user's data -> files of the repository ({bundle}, {work}: the copy, a scratch folder).
PLACEHOLDERS = {
    "/data/ct.nii.gz": "{bundle}/sample_data/example_ct.nii.gz",
    "/data/ct_series": "{work}/ct_series",  # the shipped CT written as a complete DICOM series (fixture below)
    "/data/images": "{bundle}/sample_data",
    "/data/prompts.json": "{bundle}/sample_data/demo_prompts.json",
    "/data/Dataset003_Liver": "{work}/Dataset003_Liver",  # an nnU-Net folder of the two shipped CTs (fixture below)
    "/data/out": "{work}/out",
    "/data/segfm/imgs": "{work}/segfm/imgs",  # two shipped SegFM cases, one with boxes, one without (fixture below)
    "/data/segfm/gts": "{work}/segfm/gts",
    "/data/segfm/out": "{work}/segfm_out/out",  # emptied before each command (SCRATCH_OUTPUTS)
    "<bundle folder>": "{bundle}",
    '"ct.nii.gz"': '"{bundle}/sample_data/example_ct.nii.gz"',
    "<N>": "1",  # the epoch the shortened training run wrote
}

# Documented ids overridden to shorten runs (only where the command's configs define them).
SHORTER = {
    "train.json": {
        "epochs": "1",
        "num_rounds": "2",
        "val_num_clicks": "1",
        "num_workers": "0",
        "class_ids": "'[2, 21]'",
        "encoder_embed_dim": "96",  # the demo model's sizes (docs/demo_model.md): minutes, not hours, on a CPU
        "encoder_depth": "4",
        "encoder_num_heads": "4",
        "encoder_global_attn_indexes": "'[3]'",
        "prompt_embed_dim": "96",
        "decoder_num_heads": "4",
        "decoder_mlp_dim": "384",
    },
    "evaluate.json": {"num_clicks": "2"},
}
# A resumed run continues the shortened one for one more epoch.
RESUMED_EPOCHS = "2"

# Commands not run here: (pattern in the command, why, words the docs must say next to it).
NOT_RUN = (
    ("python -m pytest tests", "the test suite itself (.ci/run)", "runs the whole suite"),
    ("requirements-monailabel.txt", "run as written in a fresh venv by tests/app_install.py", "MONAI Label"),
    ("monailabel.main start_server", "a server; tests/app_install.py starts it as written", "3D Slicer"),
    ("download_large_files", "downloads the released weights", "internet"),
    ("inference_trt.json", "needs CUDA and TensorRT", "CUDA"),
    ("--nproc_per_node=8", "needs 8 GPUs (2 CPU processes: tests/test_batch.py)", "GPUs"),
    ("turbo_shaped.pth", "the zoo rehearsal (tests/test_run_zoo_ci.py), needs a zoo snapshot", "zoo snapshot"),
)

# Commands that need the released weights (or a model this repository cannot ship): they must end with one
# ``error:`` line saying what to get. (pattern, words the docs must say next to it, words the error must say).
EXPECTED_ERRORS = (
    ("--pretrained_checkpoint models/model.pt", "released weights", "download_large_files"),
    ("convert models/model.pt", "released weights", "download_large_files"),
    ("'label_prompt'", "class prompts", "class prompts"),
)

# Configs whose runs answer one request with a label map (checked as such); other configs: exit status and log only.
INFERENCE_CONFIGS = {"inference.json", "inference_torchscript.json", "inference_onnx.json"}

# The SegFM cases behind /data/segfm (tests/data/segfm/README.md): a CT of anisotropic spacing and an MRI, with boxes.
SEGFM_CASES = ("CT_PelvisAniso.npz", "MR_AbdomenSm.npz")

# Folders the docs' commands write to by default; emptied before each command, whose results are checked after it.
SCRATCH_OUTPUTS = ("eval", "out")


@dataclass(frozen=True)
class Command:
    """One documented command."""

    doc: str
    line: int
    text: str  # as written, continuation lines joined
    lang: str  # bash or python
    at_root: bool  # run from the repository root (else from bundle/)
    context: str  # the comment above it in its block, its own comment and the paragraph before the block

    @property
    def id(self) -> str:
        return f"{self.doc}:{self.line}"


def _commands_of_block(doc: str, start: int, body: str, before: str, after: str) -> list[Command]:
    root_block = bool(re.search(r"(repository root|root of the source repository)", before.split("```")[-1]))
    commands, comment, pending, first = [], "", "", 0
    for number, line in enumerate(body.splitlines(), start + 1):
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            comment = stripped if stripped else comment
            root_block = root_block or "root of the source repository" in stripped
            continue
        first = first or number
        pending = f"{pending} {stripped}" if pending else stripped
        if pending.endswith("\\"):
            pending = pending[:-1].rstrip()
            continue
        try:
            shlex.split(pending, comments=True)
        except ValueError:  # an open quote: the string goes on on the next line
            continue
        own = pending.split("  # ", 1)[1] if "  # " in pending else ""
        at_root = root_block or "root of the source repository" in own
        context = f"{before[-600:]}\n{comment}\n{own}\n{after[:1200]}"
        commands.append(Command(doc, first, pending, "bash", at_root, context))
        pending, first = "", 0
    return commands


def documented_commands() -> list[Command]:
    """Every command of the ``bash`` blocks and every ``python`` block of :data:`DOCS`, in order."""
    commands = []
    for doc in DOCS:
        text = (ROOT / doc).read_text(encoding="utf-8")
        for block in re.finditer(r"^```(\w*)\n(.*?)^```", text, re.S | re.M):
            lang, body = block.group(1), block.group(2)
            line = text.count("\n", 0, block.start(2))
            before = text[max(0, block.start() - 1200) : block.start()]
            after = text[block.end() :].split("```")[0]
            if lang == "bash":
                commands += _commands_of_block(doc, line, body, before, after)
            elif lang == "python":
                at_root = "repository root" in before.split("```")[-1]
                commands.append(Command(doc, line + 1, body, "python", at_root, before[-600:]))
    return commands


COMMANDS = documented_commands()


def _first(table: tuple, command: Command) -> tuple | None:
    return next((row for row in table if row[0] in command.text), None)


RUN = [c for c in COMMANDS if not _first(NOT_RUN, c)]
NOT_RUN_HERE = [c for c in COMMANDS if _first(NOT_RUN, c)]


def _substituted(text: str, work: Path) -> str:
    for placeholder in sorted(PLACEHOLDERS, key=len, reverse=True):
        text = text.replace(placeholder, PLACEHOLDERS[placeholder].format(bundle=work / "repo" / "bundle", work=work))
    return text


def _shortened(text: str) -> str:
    """The command with :data:`SHORTER`'s ids set (replaced where given, added where not)."""
    for config, overrides in SHORTER.items():
        if config not in text:
            continue
        for key, value in overrides.items():
            if key == "epochs" and "--resume_from" in text:
                value = RESUMED_EPOCHS
            given = re.compile(rf"--{key} (\"[^\"]*\"|'[^']*'|\S+)")
            text = given.sub(f"--{key} {value}", text) if given.search(text) else f"{text} --{key} {value}"
    return text


def _request(text: str) -> dict:
    found = re.search(r"--input_dict\s+\"(.*?)\"(\s|$)", text, re.S)
    return ast.literal_eval(found.group(1)) if found else {}


def _output_dir(text: str, cwd: Path) -> Path:
    found = re.search(r"--output_dir\s+(\S+)", text)
    return cwd / found.group(1) if found else cwd / "eval"


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    """A fresh copy of the repository (the files git knows, no weights but the demo model) and the placeholders."""
    work = tmp_path_factory.mktemp("documented")
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "bundle", "tools", "sammed3d", "segfm", "requirements*.txt"],
        cwd=ROOT,
        capture_output=True,
        encoding="utf-8",
        check=True,
    ).stdout.split()
    for name in listed:
        if (ROOT / name).is_file():
            (work / "repo" / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, work / "repo" / name)
    sample = work / "repo" / "bundle" / "sample_data"
    from dicom_series import write_ct_series

    write_ct_series(sample / "example_ct.nii.gz", work / "ct_series")  # what a DICOM SEG needs of its source, too
    dataset = work / "Dataset003_Liver"
    cases = (
        (sample / "example_ct.nii.gz", sample / "example_seg_fast_force_split.nii.gz"),
        (
            ROOT / "tests/data/totalsegmentator/example_ct_sm.nii.gz",
            ROOT / "tests/data/totalsegmentator/example_seg.nii.gz",
        ),
    )
    for n, (image, label) in enumerate(cases):
        for folder, name, source in (
            ("imagesTr", f"case{n}_0000.nii.gz", image),
            ("labelsTr", f"case{n}.nii.gz", label),
        ):
            (dataset / folder).mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dataset / folder / name)
    for case in SEGFM_CASES:
        for folder in ("imgs", "gts"):
            (work / "segfm" / folder).mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / "tests/data/segfm/eval" / folder / case, work / "segfm" / folder / case)
    stubs = work / "bin"
    stubs.mkdir()
    (stubs / "pip").write_text("#!/bin/sh\necho 'pip: the test environment is installed already'\n", encoding="utf-8")
    (stubs / "pip").chmod(0o755)
    return work


def _run(command: Command, work: Path) -> tuple[subprocess.CompletedProcess, Path, str]:
    cwd = work / "repo" if command.at_root else work / "repo" / "bundle"
    for name in SCRATCH_OUTPUTS:
        shutil.rmtree(work / "repo" / "bundle" / name, ignore_errors=True)
    shutil.rmtree(work / "segfm_out", ignore_errors=True)
    env = {
        **os.environ,
        "PATH": f"{work / 'bin'}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    env["OMP_NUM_THREADS"] = env.get("OMP_NUM_THREADS", "2")
    text = _substituted(command.text, work)
    text = text if command.lang == "python" else _shortened(text)
    argv = ["python", "-c", text] if command.lang == "python" else ["bash", "-c", text]
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, encoding="utf-8", errors="replace", timeout=900)
    return done, cwd, text


def _check_promises(command: Command, cwd: Path, text: str, log: str) -> None:
    """What the docs promise for this kind of command, read from the command."""
    assert ".partial-" not in log, "the log names a temporary file"
    cwd = cwd / "bundle" if "cd bundle &&" in text else cwd
    configs = set(re.findall(r"configs/(\w+\.json)", text))
    # one request through inference.json (TorchScript overlay included); other overlays promise other things
    if "monai.bundle run" in text and "inference.json" in configs and configs <= INFERENCE_CONFIGS:
        request = _request(text)
        image = Path(request.get("image", "example_ct.nii.gz"))
        stem = image.name.split(".")[0] if image.suffix else image.name
        if isinstance(request.get("label"), str):  # simulation mode: clicks from a label, Dice per click
            assert (_output_dir(text, cwd) / f"{stem}_clicks.json").is_file()
            return
        objects = request.get("objects") or ({"object": request} if request else {})
        if "--output_format dicom_seg" in text:  # a DICOM SEG of the series: one segment per object, by its name
            written = _output_dir(text, cwd) / f"{stem}_seg.dcm"
            assert written.is_file(), f"no {written}"
            assert f"{written.name}: DICOM SEG" in log, "the log does not name the DICOM SEG it wrote"
            seg = pydicom.dcmread(written)
            assert seg.Modality == "SEG" and [s.SegmentLabel for s in seg.SegmentSequence] == list(objects)
            assert seg.NumberOfFrames > 0, "no segment has a voxel"
            return
        written = _output_dir(text, cwd) / f"{stem}_seg.nii.gz"
        assert written.is_file(), f"no {written}"
        assert str(written) in log or written.name in log, "the log does not name the label map it wrote"
        values = set(np.unique(np.asarray(nib.load(written).dataobj)).tolist())
        wanted = {o.get("label", 1) for o in objects.values()} or {2, 21}
        assert wanted <= values, f"labels {sorted(wanted - values)} missing from {written}"
    if "batch_inference.json" in text:
        out = _output_dir(text, cwd)
        assert (out / "batch_report.csv").is_file() and (out / "batch_failures.csv").is_file()
        assert (out / "example_ct_seg.nii.gz").is_file()
    if "configs/train.json" in text and "evaluate.json" not in text:
        checkpoints = _output_dir(text, cwd) / "checkpoints"
        assert (checkpoints / "model.pt").is_file(), "no model.pt at the end of the run"
        assert list(checkpoints.glob("checkpoint_epoch=*.pt")), "no epoch checkpoint"
        assert not (cwd / "models" / "model.pt").exists(), "training wrote into the bundle's models/"
        assert "loss" in log, "the run logged no loss"
        assert list((_output_dir(text, cwd) / "tensorboard").glob("events.*")), "no scalars written"
    if "evaluate.json" in text and "--protocol segfm" in text:
        out = _output_dir(text, cwd)
        for name in ("segfm_metrics.csv", "segfm_metrics.json", "segfm_dice.png"):
            assert (out / name).is_file(), f"no {name}"
    elif "evaluate.json" in text:
        out = _output_dir(text, cwd)
        for name in ("nclick_metrics.csv", "nclick_summary.json", "nclick_dice.png"):
            assert (out / name).is_file(), f"no {name}"
        assert "AUC" in log
    if "scripts.export" in text:
        out = cwd / re.search(r"--out_dir\s+(\S+)", text).group(1)
        onnx = ("encoder.onnx", "decoder.onnx", "decoder_mask_only.onnx", "upsample.onnx")
        for name in onnx if "--format onnx" in text else ("encoder.ts", "decoder.ts"):
            assert (out / name).is_file(), f"no {name}"
    if "ckpt_export" in text:
        assert (cwd / re.search(r"--filepath\s+(\S+)", text).group(1)).is_file()
    if "build_bundle_zip.py" in text:
        assert list((cwd / re.search(r"--out_dir\s+(\S+)", text).group(1)).glob("*.zip"))
    if "segfm_predict.json" in text:
        inputs, out = (Path(re.search(rf"--{name}\s+(\S+)", text).group(1)) for name in ("input_dir", "output_dir"))
        for case in SEGFM_CASES:
            with np.load(inputs / case) as image, np.load(out / case) as answer:
                assert answer["segs"].dtype == np.uint8 and answer["segs"].shape == image["imgs"].shape
    if "monai.bundle download " in text:
        assert (cwd / re.search(r"--bundle_dir\s+(\S+)", text).group(1) / "sam_med3d_interactive_ct_mri").is_dir()
    if command.lang == "python":
        assert "voxels" in log or "session" in text


@pytest.mark.parametrize("command", NOT_RUN_HERE, ids=[c.id for c in NOT_RUN_HERE])
def test_a_command_not_run_here_says_what_it_needs(command: Command) -> None:
    """Commands this machine cannot run (:data:`NOT_RUN`): the docs must say next to them what they need."""
    pattern, reason, words = _first(NOT_RUN, command)
    assert words.lower() in command.context.lower(), f"the docs do not say '{words}' next to it ({reason})"


def test_every_not_run_row_still_matches_a_documented_command() -> None:
    stale = [row[0] for row in NOT_RUN if not any(row[0] in c.text for c in COMMANDS)]
    assert not stale, f"NOT_RUN rows that no documented command matches any more: {stale}"


@pytest.mark.slow
@pytest.mark.parametrize("command", RUN, ids=[c.id for c in RUN])
def test_documented_command(command: Command, work: Path) -> None:
    """Run the command as written (placeholders mapped, runs shortened) and check what the docs promise."""
    done, cwd, text = _run(command, work)
    log = done.stdout + done.stderr
    expected = _first(EXPECTED_ERRORS, command)
    if expected:
        assert expected[1].lower() in command.context.lower(), f"the docs do not say '{expected[1]}' next to it"
        errors = [line for line in log.splitlines() if line.startswith("error:")]
        assert done.returncode == 1 and len(errors) == 1, log[-3000:]
        assert expected[2] in errors[0], errors[0]
        assert "Traceback" not in log, log[-3000:]
        return
    assert done.returncode == 0, log[-4000:]
    _check_promises(command, cwd, text, log)


def test_the_commands_are_found() -> None:
    """The extraction sees the docs' commands (a parsing slip must not pass the test above by finding none)."""
    texts = [c.text for c in COMMANDS]
    assert len(COMMANDS) >= 25
    assert any("configs/train.json" in t and "--resume_from" in t for t in texts)
    assert any(c.lang == "python" for c in COMMANDS)
    assert any("'objects'" in t and "points_world" in t for t in texts), "a quoted string over two lines is one command"
