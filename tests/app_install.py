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
"""The MONAI Label app installed and started as README says, in a fresh copy of the repository with a venv of its own.

README's words are the script: the venv command of its set-up paragraph, its first command (install and the main
job) and the MONAI Label section's install and start commands are read from README.md and run as written (only
``<folder>`` and the port are filled in). So a package missing from ``requirements-monailabel.txt``, a start-up that
needs the internet or a wrong command in README fails the tests that use this install, not a user. Every server
started here runs offline (a dead proxy for everything but 127.0.0.1) with a temp folder of its own, which must be
empty again when it has stopped.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from conftest import ROOT, fresh_clone

__all__ = ["AppInstall", "Server", "install_as_readme_says", "free_port", "readme_app_commands"]

# Requests to anything but loopback go to this port, where nothing listens: a download at start fails at once.
DEAD_PROXY = "http://127.0.0.1:9"
# Development only (CI never sets it): a folder whose .venv an earlier run built is reused, its files copied anew.
REUSE = "SAM_MED3D_REUSE_INSTALL"


def readme_app_commands(readme: str) -> dict[str, str]:
    """README's venv command, first command, MONAI Label install command and server start command.

    Args:
        readme: README.md's text.
    """
    venv = re.search(r"`(python3 -m venv \.venv[^`]*)`", readme)
    blocks = [m.group(1) for m in re.finditer(r"^```bash\n(.*?)^```", readme, re.S | re.M)]
    lines = [re.sub(r"\\\n\s*", "", block).strip().splitlines() for block in blocks]
    commands = [line.strip() for block in lines for line in block if line.strip() and not line.startswith("#")]
    found = {
        "venv": venv.group(1) if venv else "",
        "first": commands[0] if commands else "",
        "install": next((c for c in commands if "requirements-monailabel.txt" in c), ""),
        "start": next((c for c in commands if "monailabel.main start_server" in c), ""),
    }
    missing = [name for name, command in found.items() if not command]
    assert not missing, f"README.md does not show these commands any more: {missing}"
    return found


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _clean_env() -> dict[str, str]:
    """This environment without the test venv: a new user's shell."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    venv_bin = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p != venv_bin)
    return env


@dataclass(frozen=True)
class AppInstall:
    """A fresh copy of the repository with the venv README's commands made in it.

    Args:
        root: the copy's root.
        python: the venv's Python.
        site_packages: the venv's site-packages (the tests import ``monailabel.client`` from there).
        commands: README's commands (:func:`readme_app_commands`).
        log: what the set-up printed.
    """

    root: Path
    python: Path
    site_packages: Path
    commands: dict[str, str]
    log: str


def install_as_readme_says(dest: Path) -> AppInstall:
    """Copy the repository to ``dest`` as a fresh clone holds it and run README's set-up and MONAI Label install there.

    Args:
        dest: an empty folder.
    """
    commands = readme_app_commands((ROOT / "README.md").read_text(encoding="utf-8"))
    reuse = os.environ.get(REUSE)
    if reuse and (Path(reuse) / ".venv").is_dir():  # a developer's shortcut: the files anew, the venv as it was
        dest = Path(reuse)
        commands = {**commands, "venv": ". .venv/bin/activate"}
        shutil.rmtree(dest / "bundle" / "eval", ignore_errors=True)  # the main job's output of the earlier run
    root = fresh_clone(dest)
    script = f"set -e\n{commands['venv']}\n( {commands['first']} )\n{commands['install']}\n"
    done = subprocess.run(
        ["bash", "-c", script], cwd=root, env=_clean_env(), capture_output=True, encoding="utf-8", errors="replace"
    )
    log = done.stdout + done.stderr
    assert done.returncode == 0, f"README's set-up failed:\n{log[-4000:]}"
    python = root / ".venv" / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True,
        encoding="utf-8",
        check=True,
    ).stdout.strip()
    return AppInstall(root, python, Path(site), commands, log)


class Server:
    """README's start command, run in the install's venv on 127.0.0.1, offline, with a temp folder of its own.

    Args:
        install: the install.
        studies: a folder of images or a DICOMweb URL (README's ``<folder>``).
        log: where the server's output goes.
        conf: more ``--conf <name> <value>`` pairs.
    """

    def __init__(self, install: AppInstall, studies: str | Path, log: Path, conf: tuple[str, ...] = ()) -> None:
        self.install, self.log = install, log
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.tmp = log.parent / f"{log.stem}_tmp"
        self.tmp.mkdir(parents=True, exist_ok=True)
        command = install.commands["start"].replace("<folder>", str(studies))
        command = re.sub(r"--port \d+", f"--port {self.port}", command)
        extra = " ".join(f"--conf {name} {value}" for name, value in zip(conf[::2], conf[1::2]))
        env = {
            **_clean_env(),
            "TMPDIR": str(self.tmp),
            "MONAI_LABEL_DATASTORE_AUTO_RELOAD": "false",
            "HTTP_PROXY": DEAD_PROXY,
            "HTTPS_PROXY": DEAD_PROXY,
            "http_proxy": DEAD_PROXY,
            "https_proxy": DEAD_PROXY,
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
        }
        with log.open("w", encoding="utf-8") as out:
            self.proc = subprocess.Popen(
                ["bash", "-c", f". .venv/bin/activate && exec {command} {extra}"],
                cwd=install.root,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def output(self) -> str:
        """What the server printed so far."""
        return self.log.read_text(encoding="utf-8", errors="replace")

    def wait_up(self, timeout: float = 240) -> None:
        """Wait for ``/info/`` to answer; the server's output on failure."""
        import requests

        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"the server ended at start:\n{self.output()[-3000:]}")
            try:
                if requests.get(f"{self.url}/info/", timeout=5).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.5)
        raise AssertionError(f"the server did not answer /info/ in {timeout} s:\n{self.output()[-3000:]}")

    def stop(self) -> None:
        """SIGTERM (the server shuts down as on Ctrl-C), SIGKILL after 30 s."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def leftovers(self) -> list[str]:
        """What the server left in its temp folder (call after :meth:`stop`)."""
        return sorted(p.name for p in self.tmp.iterdir())

    def cleanup(self) -> None:
        """Stop and remove the temp folder."""
        self.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)
