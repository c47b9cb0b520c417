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
"""Rehearse the MONAI Model Zoo's own CI on this bundle, offline, in a throw-away copy of a zoo snapshot.

Given a local snapshot of ``Project-MONAI/model-zoo`` (a checkout, or any git repository of it with ``--zoo_rev``),
the script:

1. clones the snapshot into a temporary folder whose ``origin`` is a local bare copy with ``dev`` at the snapshot
   commit, so the zoo's ``git fetch origin dev`` and ``git diff`` work without a network;
2. copies the bundle into ``models/<name>/`` as a pull request would hold it (git-tracked files when the bundle is
   in a git work tree; never the files that ``large_files.yml`` downloads), adds the files that a bundle's own PR
   adds to the zoo when asked to (``ci/unit_tests/test_<name>[_dist].py``, the bundle's entries in lists of
   ``ci/bundle_custom_data.py``), and stages them;
3. runs every pre-commit hook of the zoo's ``.pre-commit-config.yaml`` on the staged PR files, as a contributor's
   ``git commit`` would (the hooks repository comes from ``--hooks_repo``, a local clone, through a git
   ``insteadOf`` rule, so the zoo's config stays as it is), then commits the PR;
4. stands in for the two downloads only: the metadata schema (a local copy placed where ``ci/prepare_schema.py``
   downloads it, so its ``download_url`` finds the file and skips) and each file of ``large_files.yml`` (placed at
   its path: ``--weights`` gives a file, whose hash is checked when it is the one ``large_files.yml`` names and
   blanked and reported when it is not, e.g. a stand-in with the released shapes; otherwise a stand-in, which is
   what the zoo's own ``verify_bundle._produce_fake_weights`` makes: the ``state_dict`` of the bundle's
   ``network_def`` with random initial weights. It lets the checks that load weights run; it is NOT a trained
   model, and a ``hash_val`` in ``large_files.yml`` cannot be checked against it, so that hash is blanked in the
   copy and reported);
5. runs ``ci/run_premerge_cpu.sh changed`` (the CPU job) with a stand-in for ``pip`` on ``PATH``: nothing is
   installed; each requirement is checked against the environment the checks run in, and the bundle's own pins
   must all be met there (they are what the real job installs). Then ``ci/verify_bundle.py`` in ``min`` and in
   ``full`` mode on CPU (the GPU job's call), ``ci/unit_tests/runner.py`` (and its ``--dist`` form when a dist test is
   given), the code-format commands of ``runtests.sh --codeformat`` on the PR's files, and, with ``--ci_python``, a
   resolve of the bundle's pins for the zoo CI's Python (this one needs the package index);
6. prints one line per check: ``PASS``/``FAIL``/``SKIP``, the check, and the last line of its output. Full logs go
   to ``--log_dir``.

Nothing of the snapshot is changed beyond what a bundle's PR adds. The zoo's code runs as it is; nothing of it is
copied into this repository. ``ci/run_premerge_cpu.sh`` deletes everything in ``/opt/hostedtoolcache`` but
``Python`` (a GitHub runner clean-up): the script refuses to run it where that folder holds anything else.

Example (from the repository root; the interpreter must have MONAI, torch and the bundle's packages)::

    python tools/run_zoo_ci.py --zoo <model-zoo snapshot> --bundle bundle --name sam_med3d_interactive_ct_mri \\
        --hooks_repo <clone of pre-commit/pre-commit-hooks> --log_dir zoo_ci_logs

pre-commit is not needed in that interpreter: when it is missing, the script makes its own virtual environment
(``--cache_dir``) that sees the interpreter's packages and installs ``pre-commit`` there from the package index.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import dataclasses
import hashlib
import importlib.metadata
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Local copies of the metadata schema, looked for in this order when ``--schema`` is not given.
SCHEMA_CANDIDATES = (
    ROOT / "tests" / "data" / "meta_schema_20240725.json",
    ROOT.parent / "shared" / "monai" / "meta_schema_20240725.json",
    Path("/work/shared/monai/meta_schema_20240725.json"),
)
# The hooks repository of the zoo's ``.pre-commit-config.yaml``; ``--hooks_repo`` stands in for it.
HOOKS_URL = "https://github.com/pre-commit/pre-commit-hooks"
# Large files with these suffixes get a ``state_dict`` stand-in; any other large file gets an empty one.
WEIGHT_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin")
# Emptied (all but ``Python``) by ``ci/run_premerge_cpu.sh``.
HOSTED_TOOLCACHE = Path("/opt/hostedtoolcache")
# ``ci/get_bundle_requirements.py`` writes the bundle's pins to ``requirements_<name>.txt``.
BUNDLE_PIN_PREFIX = "requirements_"
PASS, FAIL, SKIP = "PASS", "FAIL", "SKIP"
_GIT_IDENTITY = ("-c", "user.name=run_zoo_ci", "-c", "user.email=run_zoo_ci@localhost")


@dataclasses.dataclass
class Outcome:
    """The result of one check.

    Args:
        name: what was checked.
        status: ``PASS``, ``FAIL`` or ``SKIP``.
        line: the last line of its output (or why it was skipped).
        log: the full log, if one was written.
        seconds: how long it ran.
    """

    name: str
    status: str
    line: str
    log: Path | None = None
    seconds: float = 0.0

    def render(self) -> str:
        """One line: status, check, seconds and the last output line."""
        took = f"{self.seconds:6.1f}s" if self.seconds else " " * 7
        return f"{self.status}  {self.name:<46} {took}  {self.line}"


def last_line(text: str) -> str:
    """The last non-empty line of ``text`` (stripped), or ``"(no output)"``.

    Args:
        text: command output.
    """
    for line in reversed(text.splitlines()):
        if line.strip():
            return line.strip()
    return "(no output)"


def run_command(
    cmd: Sequence[str], cwd: Path, log: Path, env: dict[str, str] | None = None, timeout: float = 3600.0
) -> tuple[int, str, float]:
    """Run ``cmd``, writing its combined output to ``log``.

    Args:
        cmd: the command and its arguments.
        cwd: where to run it.
        log: the file for its output (and the command line, on top).
        env: its environment (this process's when ``None``).
        timeout: seconds before it is killed (return code 124).

    Returns:
        ``(return code, output, seconds)``.
    """
    start = time.monotonic()
    try:
        done = subprocess.run(
            list(cmd),
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            encoding="utf-8",
            errors="replace",
        )
        code, output = done.returncode, done.stdout
    except subprocess.TimeoutExpired as err:
        partial = err.stdout.decode("utf-8", "replace") if isinstance(err.stdout, bytes) else (err.stdout or "")
        code, output = 124, f"{partial}\ntimed out after {timeout:.0f} s"
    seconds = time.monotonic() - start
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(f"$ {shlex.join(cmd)}\n(cwd {cwd}, exit {code}, {seconds:.1f} s)\n\n{output}", encoding="utf-8")
    return code, output, seconds


def git(*args: str, cwd: Path) -> str:
    """Run a git command that must succeed and return its stdout.

    Args:
        args: the git arguments.
        cwd: the repository.
    """
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, encoding="utf-8", errors="replace")
    if done.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed in {cwd}: {done.stderr.strip()}")
    return done.stdout


def is_git_repo(path: Path) -> bool:
    """Whether ``path`` is inside a git repository (a work tree or a bare one).

    Args:
        path: a folder.
    """
    done = subprocess.run(["git", "rev-parse", "--git-dir"], cwd=path, capture_output=True)
    return done.returncode == 0


def prepare_zoo(zoo: Path, rev: str | None, workdir: Path) -> tuple[Path, str]:
    """Make ``workdir/model-zoo`` (the snapshot on branch ``dev``) with ``origin`` = ``workdir/origin.git``.

    Args:
        zoo: the snapshot: a git work tree, a bare repository, or a plain folder.
        rev: the zoo commit to use (default: the snapshot's ``HEAD``; plain folders are taken as they are).
        workdir: the temporary folder.

    Returns:
        The clone and the snapshot commit.
    """
    origin, clone = workdir / "origin.git", workdir / "model-zoo"
    if is_git_repo(zoo):
        if rev is None and git("rev-parse", "--is-bare-repository", cwd=zoo).strip() == "false":
            if git("status", "--porcelain", "--untracked-files=no", cwd=zoo).strip():
                print(f"NOTE  {zoo} has uncommitted changes; its HEAD commit is used, not its work tree")
        commit = git("rev-parse", "--verify", f"{rev or 'HEAD'}^{{commit}}", cwd=zoo).strip()
        git("clone", "--quiet", "--bare", "--no-tags", str(zoo), str(origin), cwd=workdir)
        # a clone holds only the source's branches: bring the commit in even when it is on none of them
        git("fetch", "--quiet", "--no-tags", str(zoo), commit, cwd=origin)
    else:
        shutil.copytree(zoo, clone, symlinks=True)
        git("init", "--quiet", "-b", "dev", cwd=clone)
        git("add", "--all", cwd=clone)
        git(*_GIT_IDENTITY, "commit", "--quiet", "-m", f"zoo snapshot from {zoo}", cwd=clone)
        commit = git("rev-parse", "HEAD", cwd=clone).strip()
        git("clone", "--quiet", "--bare", str(clone), str(origin), cwd=workdir)
        shutil.rmtree(clone)
    git("update-ref", "refs/heads/dev", commit, cwd=origin)
    git("symbolic-ref", "HEAD", "refs/heads/dev", cwd=origin)
    git("clone", "--quiet", "--branch", "dev", str(origin), str(clone), cwd=workdir)
    return clone, commit


def file_hash(path: Path, hash_type: str) -> str:
    """The hex digest of a file, as ``large_files.yml``'s ``hash_val`` holds it.

    Args:
        path: the file.
        hash_type: ``md5``, ``sha1``, ``sha256`` or ``sha512``.
    """
    digest = hashlib.new(hash_type.lower())
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_large_files(bundle: Path) -> tuple[Path | None, list[dict]]:
    """The bundle's large-file list (``large_files.yml``, ``.yaml`` or ``.json``) and its entries.

    Args:
        bundle: the bundle folder.
    """
    found = None
    for suffix in ("json", "yaml", "yml"):  # as the zoo's _find_bundle_file: the last one found wins
        if (bundle / f"large_files.{suffix}").is_file():
            found = bundle / f"large_files.{suffix}"
    if found is None:
        return None, []
    if found.suffix == ".json":
        data = json.loads(found.read_text(encoding="utf-8"))
    else:
        import yaml

        data = yaml.safe_load(found.read_text(encoding="utf-8"))
    entries = (data or {}).get("large_files", [])
    return found, [dict(entry) for entry in entries]


def pr_files(bundle: Path, skip: Iterable[str]) -> list[Path]:
    """The bundle files a pull request holds, relative to ``bundle``, sorted.

    In a git work tree these are the tracked files (with their work-tree content); elsewhere every file but caches,
    hidden files and ``eval/``. Files named in ``large_files.yml`` are never included: the CI downloads them.

    Args:
        bundle: the bundle folder.
        skip: paths (relative to ``bundle``) to leave out.
    """
    skipped = {Path(p).as_posix() for p in skip}
    if is_git_repo(bundle) and git("rev-parse", "--is-inside-work-tree", cwd=bundle).strip() == "true":
        listed = git("ls-files", "-z", "--", ".", cwd=bundle).split("\0")
        files = [Path(p) for p in listed if p and (bundle / p).is_file()]
    else:
        files = []
        for path in bundle.rglob("*"):
            relative = path.relative_to(bundle)
            parts = relative.parts
            hidden = any(p.startswith(".") or p == "__pycache__" for p in parts)
            if path.is_file() and not hidden and parts[0] != "eval" and path.suffix not in (".pyc", ".pyo"):
                files.append(relative)
    return sorted(f for f in files if f.as_posix() not in skipped)


def add_to_custom_list(custom_data: Path, list_name: str, bundle_name: str) -> None:
    """Add ``bundle_name`` to the list ``list_name`` of the zoo's ``ci/bundle_custom_data.py``, as its PR would.

    Args:
        custom_data: ``ci/bundle_custom_data.py`` of the clone.
        list_name: e.g. ``exclude_verify_torchscript_list``.
        bundle_name: the bundle's zoo name.

    Raises:
        ValueError: no top-level list of that name.
    """
    source = custom_data.read_text(encoding="utf-8")
    for node in ast.parse(source).body:
        if (
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == list_name for t in node.targets)
            and isinstance(node.value, ast.List)
        ):
            if any(isinstance(e, ast.Constant) and e.value == bundle_name for e in node.value.elts):
                return
            lines = source.splitlines(keepends=True)
            end_row, end_col = node.value.end_lineno - 1, node.value.end_col_offset - 1  # the closing bracket
            if node.value.lineno == node.value.end_lineno:  # one line: [..., "name"]
                line = lines[end_row]
                sep = ", " if node.value.elts else ""
                lines[end_row] = f'{line[:end_col]}{sep}"{bundle_name}"{line[end_col:]}'
            else:  # one item per line, before the closing bracket
                indent = " " * (node.value.elts[0].col_offset if node.value.elts else 4)
                lines.insert(end_row, f'{indent}"{bundle_name}",\n')
            custom_data.write_text("".join(lines), encoding="utf-8")
            return
    raise ValueError(f"{custom_data} has no list {list_name}")


def hook_ids(config: Path) -> list[str]:
    """The ids of the hooks in a ``.pre-commit-config.yaml``, in order, each once.

    Args:
        config: the config file.
    """
    import yaml

    data = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
    ids: list[str] = []
    for repo in data.get("repos", []):
        for hook in repo.get("hooks", []):
            if hook["id"] not in ids:
                ids.append(hook["id"])
    return ids


def site_dirs(python: str) -> list[str]:
    """The package folders ``python`` imports from: its own and those that ``.pth`` files add, in order.

    Args:
        python: an interpreter.
    """
    code = (
        "import json, os, sys; print(json.dumps([p for p in sys.path if os.path.isdir(p) and "
        "os.path.basename(p) in ('site-packages', 'dist-packages')]))"
    )
    paths = json.loads(
        subprocess.run([python, "-c", code], capture_output=True, text=True, encoding="utf-8", check=True).stdout
    )
    return list(dict.fromkeys(paths))


def own_site_dir(python: str) -> str:
    """The ``purelib`` folder of ``python``'s environment (where pip installs).

    Args:
        python: an interpreter.
    """
    code = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    return subprocess.run(
        [python, "-c", code], capture_output=True, text=True, encoding="utf-8", check=True
    ).stdout.strip()


def has_module(python: str, module: str) -> bool:
    """Whether ``python`` can import ``module``.

    Args:
        python: an interpreter.
        module: a module name.
    """
    return subprocess.run([python, "-c", f"import {module}"], capture_output=True).returncode == 0


_UNMET_SNIPPET = """
import sys
from importlib.metadata import PackageNotFoundError, version
from packaging.requirements import Requirement
for text in sys.argv[1:]:
    req = Requirement(text)
    try:
        ok = req.specifier.contains(version(req.name), prereleases=True)
    except PackageNotFoundError:
        ok = False
    if not ok:
        print(text)
"""


def unmet(python: str, requirements: Sequence[str]) -> list[str]:
    """The requirements (pip syntax) that the distributions ``python`` sees do not meet.

    Args:
        python: an interpreter (it must see ``packaging``).
        requirements: e.g. ``["pre-commit", "virtualenv<21"]``.
    """
    done = subprocess.run(
        [python, "-c", _UNMET_SNIPPET, *requirements], capture_output=True, text=True, encoding="utf-8"
    )
    if done.returncode != 0:  # no packaging there: take everything as missing
        return list(requirements)
    return done.stdout.split()


def tool_python(python: str, cache_dir: Path, needed: Sequence[str]) -> str:
    """An interpreter that sees ``python``'s packages and meets every requirement of ``needed``.

    ``python`` itself when it meets them all; otherwise a virtual environment in ``cache_dir`` (made once, without
    a pip or setuptools of its own) whose ``.pth`` file adds ``python``'s package folders after its own; the unmet
    requirements are installed there from the package index by ``python``'s pip, which leaves packages outside
    that environment alone. ``python``'s environment is never changed.

    Args:
        python: the interpreter with MONAI, torch and the bundle's packages.
        cache_dir: where the tool environment lives.
        needed: requirements in pip syntax.
    """
    if not unmet(python, needed):
        return python
    tag = hashlib.sha1(python.encode()).hexdigest()[:8]
    venv = cache_dir / f"venv-{tag}"
    exe = venv / "bin" / "python"
    if not exe.exists():
        base = subprocess.run(
            [python, "-c", "import sys; print(getattr(sys, '_base_executable', sys.executable))"],
            capture_output=True,
            text=True,
            encoding="utf-8",
            check=True,
        ).stdout.strip()
        subprocess.run([base, "-m", "venv", "--without-pip", str(venv)], check=True)
        own = own_site_dir(str(exe))
        Path(own, "zz_run_zoo_ci_base.pth").write_text("\n".join(site_dirs(python)) + "\n", encoding="utf-8")
    still = unmet(str(exe), needed)
    if still:
        print(f"NOTE  installing {' '.join(still)} into the tool environment {venv} (package index)")
        subprocess.run([str(exe), "-m", "pip", "install", "--quiet", *still], check=True)
    return str(exe)


def find_interpreter(version: str) -> str | None:
    """A working ``python<version>``: on ``PATH``, else under ``~/.pyenv/versions``; ``None`` if there is none.

    A pyenv shim on ``PATH`` is no answer when pyenv's selected version is another one (it exits 127), so each
    candidate is run once.

    Args:
        version: e.g. ``"3.8"``.
    """
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    candidates = [shutil.which(f"python{version}")]
    candidates += [str(d / "bin" / f"python{version}") for d in sorted(pyenv.glob(f"{version}.*"), reverse=True)]
    for exe in candidates:
        if exe and Path(exe).exists():
            done = subprocess.run(
                [exe, "-c", "import sys; print(sys.executable)"], capture_output=True, text=True, encoding="utf-8"
            )
            if done.returncode == 0:
                return done.stdout.strip()
    return None


def write_pip_stand_in(shim_dir: Path, python: str) -> None:
    """Put a ``pip`` on ``shim_dir`` that checks requirements instead of installing them (see ``pip_stand_in``).

    Args:
        shim_dir: a folder that goes first on ``PATH``.
        python: the interpreter whose installed packages are checked.
    """
    shim_dir.mkdir(parents=True, exist_ok=True)
    for name in ("pip", "pip3"):
        shim = shim_dir / name
        shim.write_text(
            f'#!/bin/sh\nexec {shlex.quote(python)} {shlex.quote(__file__)} _pip_stand_in "$@"\n', encoding="utf-8"
        )
        shim.chmod(0o755)


def pip_stand_in(args: Sequence[str]) -> int:
    """``pip`` as the zoo's CI scripts call it, offline: check ``-r`` requirements against this environment.

    Every requirement is looked up among the installed distributions. The bundle's own pins
    (``requirements_<name>.txt``, the file ``ci/get_bundle_requirements.py`` writes) must all be met, because they
    are what the real job installs and the checks that follow are meant to run on them: any that is not fails (exit
    1). The zoo's own requirement files (its dev tools) are only reported. Nothing is installed.

    Args:
        args: pip's arguments.

    Returns:
        The exit code.
    """
    from packaging.requirements import InvalidRequirement, Requirement

    files = [args[i + 1] for i, a in enumerate(args[:-1]) if a in ("-r", "--requirement")]
    if not args or args[0] != "install" or not files:
        print(f"pip stand-in: not run (offline): pip {shlex.join(args)}")
        return 0
    code = 0
    for name in files:
        strict = Path(name).name.startswith(BUNDLE_PIN_PREFIX)
        met, unmet = [], []
        for raw in Path(name).read_text(encoding="utf-8").splitlines():
            text = raw.split(" #")[0].strip()
            if not text or text.startswith(("#", "-")):
                continue
            try:
                req = Requirement(text)
            except InvalidRequirement:
                unmet.append(f"{text} (not a requirement pip stand-in understands)")
                continue
            if req.marker is not None and not req.marker.evaluate():
                continue
            try:
                have = importlib.metadata.version(req.name)
            except importlib.metadata.PackageNotFoundError:
                unmet.append(f"{req} (not installed)")
                continue
            (met if req.specifier.contains(have, prereleases=True) else unmet).append(f"{req} (have {have})")
        for item in met:
            print(f"pip stand-in: met    {item}")
        for item in unmet:
            print(f"pip stand-in: NOT MET {item}")
        kind = "bundle pins" if strict else "zoo requirements (reported only)"
        print(f"pip stand-in: {name}: {kind}: {len(met)} met, {len(unmet)} not met: {'; '.join(unmet) or '-'}")
        if strict and unmet:
            code = 1
    return code


def python_error(output: str) -> str | None:
    """The last Python exception line of ``output`` (``Type: message``), with the next line when the message is
    empty (TorchScript puts its message on the following lines).

    Args:
        output: a command's output.
    """
    lines = output.splitlines()
    for index in range(len(lines) - 1, -1, -1):
        found = re.match(r"^([A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt)):(.*)$", lines[index])
        if found:
            message = found.group(2).strip()
            if not message:
                message = next((x.strip() for x in lines[index + 1 :] if x.strip()), "")
            return f"{found.group(1)}: {message}"
    return None


def pre_commit_findings(output: str) -> str | None:
    """What a failed pre-commit hook reported: its first finding, and how many more there are.

    Args:
        output: ``pre-commit run`` output.
    """
    findings = [
        x.strip()
        for x in output.splitlines()
        if x.strip() and not re.match(r"^(\S.*\.{3,}.*(Passed|Failed|Skipped)|- |\[INFO\]|\$ |\(cwd )", x)
    ]
    if not findings or "Failed" not in output:
        return None
    more = f" (+{len(findings) - 1} more)" if len(findings) > 1 else ""
    return findings[0] + more


def requires_python(pin: str, pip_output: str) -> str | None:
    """The ``Requires-Python`` that pip reports for the version of ``pin`` it refused, if it says so.

    Args:
        pin: ``name==version``.
        pip_output: what ``pip install`` printed.
    """
    version = pin.split("==")[-1].strip()
    found = re.search(rf"(?:^|[:;] ){re.escape(version)} (Requires-Python [^;\n]+)", pip_output, re.MULTILINE)
    return found.group(1).strip() if found else None


def make_stand_in_weights(bundle: Path, config: str, net_id: str, outputs: Sequence[str]) -> str:
    """Save the ``state_dict`` of the bundle's ``net_id`` (random initial weights) to each of ``outputs``.

    This is how the zoo's own ``verify_bundle._produce_fake_weights`` makes weights. Empty files are placed first,
    so a network whose size depends on which weight file exists is built as it will be after the download.

    Args:
        bundle: the bundle folder.
        config: the config file that defines ``net_id``, relative to ``bundle``.
        net_id: the network's config id.
        outputs: paths relative to ``bundle``.

    Returns:
        A description of what was saved.
    """
    import torch
    from monai.bundle import ConfigParser

    for out in outputs:
        (bundle / out).parent.mkdir(parents=True, exist_ok=True)
        (bundle / out).write_bytes(b"")
    sys.path.insert(0, str(bundle))
    parser = ConfigParser()
    parser.read_config(str(bundle / config))
    parser.read_meta(str(bundle / "configs" / "metadata.json"))
    parser["bundle_root"] = str(bundle)
    torch.manual_seed(0)
    network = parser.get_parsed_content(net_id)
    state = network.state_dict()
    for out in outputs:
        torch.save(state, bundle / out)
    count = sum(t.numel() for t in state.values())
    return f"random-init state_dict of {net_id} ({type(network).__name__}, {count / 1e6:.2f} M values)"


class Rehearsal:
    """One run of the zoo's checks on one bundle.

    Args:
        options: the parsed command line.
    """

    def __init__(self, options: argparse.Namespace) -> None:
        self.opt = options
        self.name: str = options.name
        self.outcomes: list[Outcome] = []
        self.workdir = Path(tempfile.mkdtemp(prefix="run_zoo_ci-", dir=options.workdir))
        self.log_dir = Path(options.log_dir).resolve() if options.log_dir else self.workdir / "logs"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.python = str(options.python)
        self.tool = self.python
        self.zoo = Path()
        self.env: dict[str, str] = {}
        self.pr_paths: list[str] = []

    # ----------------------------------------------------------------------------------------------- reporting
    def record(self, outcome: Outcome) -> Outcome:
        """Keep and print an outcome.

        Args:
            outcome: the check's result.
        """
        self.outcomes.append(outcome)
        print(outcome.render(), flush=True)
        return outcome

    def check(
        self,
        name: str,
        cmd: Sequence[str],
        log_name: str,
        ok_codes: Sequence[int] = (0,),
        skip_marker: str | None = None,
        timeout: float | None = None,
        prefer: str | None = None,
        findings: Callable[[str], str | None] | None = None,
    ) -> Outcome:
        """Run one check command in the zoo clone and record its outcome.

        Args:
            name: the check's name in the summary.
            cmd: the command.
            log_name: the log file name.
            ok_codes: exit codes that mean PASS.
            skip_marker: output text that turns a PASS into SKIP (the check found nothing to run).
            timeout: seconds (default ``--timeout``).
            prefer: the start of an output line to show instead of the last line, when there is one.
            findings: picks the line to show for a failure from the output (``None``: the last line).
        """
        log = self.log_dir / log_name
        code, output, seconds = run_command(cmd, self.zoo, log, self.env, timeout or self.opt.timeout)
        status = PASS if code in ok_codes else FAIL
        if status == PASS and skip_marker and skip_marker in output:
            status = SKIP
        line = last_line(output) if code != 124 else f"timed out after {timeout or self.opt.timeout:.0f} s"
        preferred = [x.strip() for x in output.splitlines() if prefer and x.startswith(prefer)]
        line = preferred[0] if preferred else line
        if status == FAIL and not preferred and findings is not None:
            line = findings(output) or line
        return self.record(Outcome(name, status, line, log, seconds))

    def note(self, text: str) -> None:
        """Print a note line (stand-ins and other facts the reader must know).

        Args:
            text: the note.
        """
        print(f"NOTE  {text}", flush=True)
        with (self.log_dir / "notes.txt").open("a", encoding="utf-8") as notes:
            notes.write(text + "\n")

    # ----------------------------------------------------------------------------------------------- set-up
    def set_up(self) -> None:
        """Clone the snapshot, copy the bundle in, stage the PR, prepare the environment."""
        opt = self.opt
        self.zoo, commit = prepare_zoo(Path(opt.zoo).resolve(), opt.zoo_rev, self.workdir)
        self.note(f"zoo snapshot {commit} cloned to {self.zoo} (origin/dev = that commit, local)")
        bundle = Path(opt.bundle).resolve()
        dest = self.zoo / "models" / self.name
        if dest.exists():
            self.note(f"models/{self.name} already exists in the snapshot: replaced by the bundle (an update PR)")
            shutil.rmtree(dest)
        large_file, entries = read_large_files(bundle)
        files = pr_files(bundle, [e.get("path", "") for e in entries])
        for relative in files:
            (dest / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(bundle / relative, dest / relative)
        self.note(f"bundle {bundle} -> models/{self.name}/ ({len(files)} files, what a PR holds)")
        self.pr_paths = [f"models/{self.name}/{f.as_posix()}" for f in files]
        for flag, suffix in ((opt.unit_test, ""), (opt.unit_test_dist, "_dist")):
            if flag:
                target = f"ci/unit_tests/test_{self.name}{suffix}.py"
                shutil.copy2(flag, self.zoo / target)
                self.pr_paths.append(target)
                self.note(f"PR adds {target} (from {flag})")
        for list_name in opt.custom_list:
            add_to_custom_list(self.zoo / "ci" / "bundle_custom_data.py", list_name, self.name)
            self.note(f"PR adds {self.name!r} to {list_name} in ci/bundle_custom_data.py")
        if opt.custom_list:
            self.pr_paths.append("ci/bundle_custom_data.py")
        git("add", "--all", "--", *sorted(set(self.pr_paths)), cwd=self.zoo)
        self.large_file, self.large_entries = large_file, entries
        # the environment every check runs in
        # virtualenv 21 no longer makes Python 3.8 environments, and the zoo's hooks ask for python3.8
        needed = ["pre-commit", "virtualenv<21", "parameterized", "jsonschema"]
        self.tool = tool_python(self.python, Path(opt.cache_dir).expanduser(), needed)
        shim_dir = self.workdir / "bin"
        write_pip_stand_in(shim_dir, self.tool)
        env = dict(os.environ)
        env.pop("PYTHONPATH", None)
        env.pop("VIRTUAL_ENV", None)
        path = [str(shim_dir), str(Path(self.tool).parent)]
        py38 = find_interpreter("3.8")  # the zoo config's default_language_version for the hooks
        if py38:
            path.append(str(Path(py38).parent))
        else:
            self.note("no python3.8 here (the zoo's default_language_version for its hooks): pre-commit will fail")
        env["PATH"] = os.pathsep.join([*path, env.get("PATH", "")])
        env["CUDA_VISIBLE_DEVICES"] = "" if not opt.gpu else env.get("CUDA_VISIBLE_DEVICES", "")
        env.setdefault("OMP_NUM_THREADS", str(opt.threads))
        env["PIP_NO_INPUT"] = "1"
        env["PRE_COMMIT_HOME"] = str(Path(opt.cache_dir).expanduser() / "pre-commit")
        # pre-commit drops GIT_* variables but GIT_CONFIG_COUNT/KEY/VALUE: the insteadOf rule goes that way
        config = {"user.name": "run_zoo_ci", "user.email": "run_zoo_ci@localhost"}
        if opt.hooks_repo:
            config[f"url.{Path(opt.hooks_repo).resolve()}.insteadOf"] = HOOKS_URL
        env["GIT_CONFIG_COUNT"] = str(len(config))
        for i, (key, value) in enumerate(config.items()):
            env[f"GIT_CONFIG_KEY_{i}"], env[f"GIT_CONFIG_VALUE_{i}"] = key, value
        self.env = env

    def stand_in_downloads(self) -> None:
        """Place the schema and the large files where the zoo's download steps look first (after the PR commit)."""
        opt = self.opt
        bundle = self.zoo / "models" / self.name
        meta = json.loads((bundle / "configs" / "metadata.json").read_text(encoding="utf-8"))
        url = meta.get("schema", "")
        schema_name = url.split("/")[-1]
        candidates = [Path(opt.schema)] if opt.schema else list(SCHEMA_CANDIDATES)
        local = next((c for c in candidates if c.is_file() and c.name == schema_name), None)
        if local is None:
            self.note(f"NO stand-in for the schema {url!r}: no local file named {schema_name!r} (prepare_schema fails)")
        else:
            shutil.copyfile(local, self.zoo / "models" / schema_name)
            digest = hashlib.sha256(local.read_bytes()).hexdigest()[:16]
            self.note(f"stand-in download: {url} <- {local} (sha256 {digest}...), at models/{schema_name}")
        if self.large_file is None:
            self.note("the bundle has no large_files.yml: nothing to download")
            return
        given = dict(item.split("=", 1) for item in opt.weights)
        made, blanked = [], False
        for entry in self.large_entries:
            path = entry.get("path", "")
            target = bundle / path
            if path in given:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(given[path], target)
                if entry.get("hash_val") and file_hash(target, entry.get("hash_type") or "sha256") != entry["hash_val"]:
                    # e.g. a stand-in with the released shapes: the zoo's download would refuse it as a bad download
                    entry["hash_val"], blanked = "", True
                    self.note(
                        f"download of {path} <- {given[path]} (given with --weights; NOT the file large_files.yml "
                        "names, its hash differs: hash_val blanked in the copy, NOT CHECKED)"
                    )
                else:
                    self.note(f"download of {path} <- {given[path]} (given with --weights; its hash is checked)")
                continue
            if Path(path).suffix in WEIGHT_SUFFIXES:
                made.append(path)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(b"")
                self.note(f"stand-in download: {path} <- an EMPTY file (not a weights file; its content is unknown)")
            if entry.get("hash_val"):
                entry["hash_val"], blanked = "", True
                self.note(f"{path}: hash_val cannot be checked against a stand-in: blanked in the copy (NOT CHECKED)")
        if blanked:
            self.large_file = bundle / self.large_file.name
            if self.large_file.suffix == ".json":
                self.large_file.write_text(
                    json.dumps({"large_files": self.large_entries}, indent=4) + "\n", encoding="utf-8"
                )
            else:
                import yaml

                self.large_file.write_text(
                    yaml.safe_dump({"large_files": self.large_entries}, sort_keys=False), encoding="utf-8"
                )
        if made:
            config = next(
                (
                    f"configs/inference.{s}"
                    for s in ("json", "yaml", "yml")
                    if (bundle / f"configs/inference.{s}").is_file()
                ),
                None,
            )
            if config is None:
                for path in made:
                    (bundle / path).write_bytes(b"")
                self.note(f"stand-in download: {', '.join(made)} <- EMPTY files (no inference config to build from)")
                return
            cmd = [self.tool, __file__, "_stand_in_weights", str(bundle), config, opt.net_id, *made]
            code, output, _ = run_command(cmd, self.zoo, self.log_dir / "stand_in_weights.log", self.env)
            if code != 0:
                for path in made:
                    (bundle / path).write_bytes(b"")
                self.note(f"could not build {opt.net_id} ({last_line(output)}): EMPTY stand-ins at {', '.join(made)}")
            else:
                self.note(
                    f"stand-in download: {', '.join(made)} <- {last_line(output)}: NOT a trained model, only for the "
                    "checks that load weights"
                )

    # ----------------------------------------------------------------------------------------------- checks
    def run_hooks(self) -> None:
        """Run each pre-commit hook of the zoo's config on the PR's files.

        In ``--hooks_mode commit`` (the default) the PR is staged, not yet committed, as when a contributor's
        ``git commit`` runs the hooks; ``check-added-large-files`` then sees the PR's files as added. In ``ci`` mode
        the PR is committed first, as pre-commit.ci checks it (nothing staged, so that hook checks nothing).
        """
        config = self.zoo / ".pre-commit-config.yaml"
        if not config.is_file():
            self.record(Outcome("pre-commit", SKIP, "the snapshot has no .pre-commit-config.yaml"))
            return
        if not has_module(self.tool, "pre_commit"):
            self.record(Outcome("pre-commit", SKIP, "pre-commit is not installed"))
            return
        files = sorted(set(self.pr_paths))
        for hook in hook_ids(config):
            cmd = [self.tool, "-m", "pre_commit", "run", hook, "--color", "never", "--files", *files]
            log, name = f"pre-commit_{hook}.log", f"pre-commit {hook} ({self.opt.hooks_mode})"
            self.check(name, cmd, log, prefer="An unexpected error", findings=pre_commit_findings)
            git("checkout", "--", ".", cwd=self.zoo)  # undo a fixer's changes: the PR is checked as it is

    def commit_pr(self) -> None:
        """Commit the staged PR on top of the snapshot (what ``git diff HEAD origin/dev`` then sees)."""
        git(
            *_GIT_IDENTITY,
            "commit",
            "--quiet",
            "--no-verify",
            "-m",
            f"Add bundle {self.name} (rehearsal)",
            cwd=self.zoo,
        )

    def run_premerge_cpu(self) -> None:
        """``ci/run_premerge_cpu.sh changed``: the CPU job, with the pip stand-in."""
        script = self.zoo / "ci" / "run_premerge_cpu.sh"
        name = "ci/run_premerge_cpu.sh changed"
        if not script.is_file():
            self.record(Outcome(name, SKIP, "not in the snapshot"))
            return
        if HOSTED_TOOLCACHE.is_dir() and any(p.name != "Python" for p in HOSTED_TOOLCACHE.iterdir()):
            self.record(Outcome(name, SKIP, f"refused: the script would delete the contents of {HOSTED_TOOLCACHE}"))
            return
        self.check(name, ["bash", str(script), "changed"], "run_premerge_cpu.log", findings=python_error)

    def run_verify(self) -> None:
        """``ci/verify_bundle.py`` in ``min`` mode (the CPU job's) and ``full`` mode (the GPU job's, here on CPU)."""
        verify = str(self.zoo / "ci" / "verify_bundle.py")
        min_cmd = [self.tool, verify, "-b", self.name, "-m", "min"]
        self.check("ci/verify_bundle.py -m min", min_cmd, "verify_min.log", findings=python_error)
        device = "GPU" if self.opt.gpu else "CPU"
        full_cmd = [self.tool, verify, "--b", self.name]
        self.check(f"ci/verify_bundle.py (full, {device})", full_cmd, "verify_full.log", findings=python_error)

    def run_unit_tests(self) -> None:
        """``ci/unit_tests/runner.py --b <name>`` (and ``--dist True`` under torchrun when a dist test is there)."""
        runner = str(self.zoo / "ci" / "unit_tests" / "runner.py")
        self.check(
            "ci/unit_tests/runner.py",
            [self.tool, runner, "--b", self.name],
            "unit_tests.log",
            skip_marker="does not exists, skip test.",
            findings=python_error,
        )
        if (self.zoo / "ci" / "unit_tests" / f"test_{self.name}_dist.py").is_file():
            cmd = [self.tool, "-m", "torch.distributed.run", runner, "--b", self.name, "--dist", "True"]
            self.check("torchrun ci/unit_tests/runner.py --dist", cmd, "unit_tests_dist.log", findings=python_error)

    def run_codeformat(self) -> None:
        """The commands of ``runtests.sh --codeformat`` (isort, black, flake8, pytype) on the PR's own files."""
        targets = [f"models/{self.name}"] + [p for p in sorted(set(self.pr_paths)) if p.startswith("ci/")]
        if not any(Path(self.zoo, p).suffix == ".py" or Path(self.zoo, p).is_dir() for p in targets):
            return
        tools = {
            "isort": [self.tool, "-m", "isort", "--check", *targets],
            "black": [self.tool, "-m", "black", "--skip-magic-trailing-comma", "--check", *targets],
            "flake8": [self.tool, "-m", "flake8", *targets, "--count", "--statistics"],
        }
        for tool, cmd in tools.items():
            if has_module(self.tool, tool):
                self.check(f"codeformat {tool}", cmd, f"codeformat_{tool}.log")
            else:
                self.record(Outcome(f"codeformat {tool}", SKIP, f"{tool} is not installed"))
        if has_module(self.tool, "pytype"):
            version = subprocess.run(
                [self.tool, "-c", "import sys; print(f'{sys.version_info[0]}.{sys.version_info[1]}')"],
                capture_output=True,
                text=True,
                encoding="utf-8",
            ).stdout.strip()
            cmd = [self.tool, "-m", "pytype", "-j", str(self.opt.threads), f"--python-version={version}", *targets]
            self.check("codeformat pytype", cmd, "codeformat_pytype.log")
        else:
            self.record(Outcome("codeformat pytype", SKIP, "pytype is not installed"))

    def run_pins_check(self) -> None:
        """Resolve the bundle's pins (as ``get_bundle_requirements.py`` writes them) for ``--ci_python``."""
        name = "pins resolve on the CI's Python"
        if not self.opt.ci_python:
            self.record(Outcome(name, SKIP, "no --ci_python given (this check needs the package index)"))
            return
        env = dict(self.env, ALLOW_MONAI_RC="true")
        getter = [self.tool, str(self.zoo / "ci" / "get_bundle_requirements.py"), "--b", self.name]
        code, output, _ = run_command(getter, self.zoo, self.log_dir / "get_bundle_requirements.log", env)
        requirements = self.zoo / last_line(output)
        if code != 0 or not requirements.is_file():
            self.record(Outcome(name, FAIL, f"get_bundle_requirements.py: {last_line(output)}"))
            return
        ci_python = str(self.opt.ci_python)
        version = subprocess.run(
            [ci_python, "-c", "import platform; print(platform.python_version())"],
            capture_output=True,
            text=True,
            encoding="utf-8",
        ).stdout.strip()
        clean_env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        dry_run = [ci_python, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--pre", "--quiet"]
        pins = [
            x.strip()
            for x in requirements.read_text(encoding="utf-8").splitlines()
            if x.strip() and not x.startswith("#")
        ]
        start, refused = time.monotonic(), []
        for index, pin in enumerate(pins):  # each pin alone: Requires-Python of that very version
            log = self.log_dir / f"pins_resolve_{index:02d}.log"
            code, output, _ = run_command([*dry_run, "--no-deps", pin], self.zoo, log, clean_env, self.opt.timeout)
            if code != 0:
                refused.append(f"{pin} ({requires_python(pin, output) or last_line(output)})")
        if refused:
            line = f"{len(refused)} of {len(pins)} pins not installable: {'; '.join(refused)}"
            self.record(Outcome(f"{name} ({version})", FAIL, line, self.log_dir, time.monotonic() - start))
            return
        log = self.log_dir / "pins_resolve.log"  # all pins with their dependencies, as the CI installs them
        resolve = [x for x in dry_run if x != "--quiet"] + ["-r", str(requirements)]
        code, output, _ = run_command(resolve, self.zoo, log, clean_env, self.opt.timeout)
        status = PASS if code == 0 else FAIL
        would = next((x for x in output.splitlines() if x.startswith("Would install")), "")
        count = f" ({len(would.split()) - 2} distributions)" if would else ""
        line = f"all {len(pins)} pins and their dependencies resolve{count}" if code == 0 else last_line(output)
        self.record(Outcome(f"{name} ({version})", status, line, log, time.monotonic() - start))

    # ----------------------------------------------------------------------------------------------- driver
    def run(self) -> int:
        """Set up, run every check, print the summary; return 0 when nothing failed."""
        try:
            self.set_up()
            if not self.opt.no_hooks and self.opt.hooks_mode == "commit":
                self.run_hooks()
            self.commit_pr()
            if not self.opt.no_hooks and self.opt.hooks_mode == "ci":
                self.run_hooks()
            self.stand_in_downloads()
            self.run_premerge_cpu()
            self.run_verify()
            self.run_unit_tests()
            if not self.opt.no_codeformat:
                self.run_codeformat()
            self.run_pins_check()
        finally:
            self.summarise()
            if not self.opt.keep:  # everything goes but the logs
                for child in self.workdir.iterdir():
                    if child != self.log_dir:
                        with contextlib.suppress(OSError):
                            if child.is_dir() and not child.is_symlink():
                                shutil.rmtree(child)
                            else:
                                child.unlink()
                with contextlib.suppress(OSError):
                    self.workdir.rmdir()  # empty when the logs are elsewhere
        return 1 if any(o.status == FAIL for o in self.outcomes) else 0

    def summarise(self) -> None:
        """Print the summary (one line per check) and write it to ``summary.txt`` in the log folder."""
        lines = ["", f"== zoo CI rehearsal of models/{self.name}: summary =="]
        lines += [o.render() for o in self.outcomes]
        counts = {s: sum(o.status == s for o in self.outcomes) for s in (PASS, FAIL, SKIP)}
        lines.append(f"{counts[PASS]} passed, {counts[FAIL]} failed, {counts[SKIP]} skipped (logs: {self.log_dir})")
        if self.opt.keep:
            lines.append(f"kept: {self.workdir}")
        print("\n".join(lines), flush=True)
        (self.log_dir / "summary.txt").write_text("\n".join(lines[1:]) + "\n", encoding="utf-8")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line.

    Args:
        argv: the arguments (``sys.argv[1:]`` when ``None``).
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zoo", required=True, help="the model-zoo snapshot (a checkout, or a git repository)")
    parser.add_argument("--zoo_rev", default=None, help="zoo commit to use (default: the snapshot's HEAD)")
    parser.add_argument("--bundle", default=str(ROOT / "bundle"), help="the bundle folder (default: bundle/)")
    parser.add_argument("--name", required=True, help="the bundle's name in the zoo: models/<name>/")
    parser.add_argument("--schema", default=None, help="local copy of the metadata schema (default: tests/data/...)")
    parser.add_argument(
        "--weights",
        action="append",
        default=[],
        metavar="PATH=FILE",
        help="a real file for a large_files.yml path (repeatable); otherwise a stand-in is made",
    )
    parser.add_argument("--net_id", default="network_def", help="the network id used for stand-in weights")
    parser.add_argument(
        "--custom_list",
        action="append",
        default=[],
        metavar="LIST",
        help="add the bundle to this list of ci/bundle_custom_data.py, as its PR does (repeatable)",
    )
    parser.add_argument("--unit_test", default=None, help="the PR's ci/unit_tests/test_<name>.py")
    parser.add_argument("--unit_test_dist", default=None, help="the PR's ci/unit_tests/test_<name>_dist.py")
    parser.add_argument("--hooks_repo", default=None, help=f"local clone standing in for {HOOKS_URL}")
    parser.add_argument("--ci_python", default=None, help="interpreter of the zoo CI's Python version (pins check)")
    parser.add_argument("--python", default=sys.executable, help="interpreter with MONAI, torch and the bundle's deps")
    parser.add_argument("--cache_dir", default="~/.cache/run_zoo_ci", help="tool environment and pre-commit cache")
    parser.add_argument("--workdir", default=None, help="where the temporary folder is made (default: system temp)")
    parser.add_argument("--log_dir", default=None, help="where the logs go (default: inside the temporary folder)")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds per check")
    parser.add_argument("--threads", type=int, default=2, help="OMP_NUM_THREADS and pytype jobs")
    parser.add_argument("--gpu", action="store_true", help="let the checks see the GPUs (default: CPU only)")
    parser.add_argument("--no_hooks", action="store_true", help="skip the pre-commit hooks")
    parser.add_argument(
        "--hooks_mode",
        choices=("commit", "ci"),
        default="commit",
        help="hooks on the staged PR as `git commit` runs them (default), or on the committed PR as pre-commit.ci",
    )
    parser.add_argument("--no_codeformat", action="store_true", help="skip isort/black/flake8/pytype")
    parser.add_argument("--keep", action="store_true", help="keep the temporary zoo clone")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry (and the hidden helpers the checks call back into).

    Args:
        argv: the arguments (``sys.argv[1:]`` when ``None``).
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "_pip_stand_in":
        return pip_stand_in(args[1:])
    if args and args[0] == "_stand_in_weights":
        bundle, config, net_id, *outputs = args[1:]
        print(make_stand_in_weights(Path(bundle), config, net_id, outputs))
        return 0
    options = parse_args(args)
    for item in options.weights:
        if "=" not in item:
            raise SystemExit(f"--weights takes PATH=FILE, got {item!r}")
    return Rehearsal(options).run()


if __name__ == "__main__":
    sys.exit(main())
