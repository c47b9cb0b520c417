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
"""A real DICOMweb store for the viewer tests: Debian's Orthanc with its DICOMweb plugin, on 127.0.0.1 only.

Remote access and the DICOM port are off; its database lives in a temp folder. The Debian packages come from
``tools/install_viewer_packages.sh`` (``.ci/run`` runs it; :func:`viewer_packages` runs it when they are missing).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from glob import glob
from pathlib import Path

from app_install import free_port
from conftest import ROOT

__all__ = ["Orthanc", "viewer_packages"]

_INSTALLER = ROOT / "tools" / "install_viewer_packages.sh"


def viewer_packages() -> None:
    """Install the viewer tests' Debian packages if one is missing (as ``.ci/run`` does); fail saying how if that is
    not possible here."""
    done = subprocess.run(["bash", str(_INSTALLER)], capture_output=True, encoding="utf-8", errors="replace")
    assert done.returncode == 0, f"{_INSTALLER} failed:\n{(done.stdout + done.stderr)[-2000:]}"


class Orthanc:
    """An Orthanc server with its DICOMweb plugin on a free port of 127.0.0.1.

    Args:
        folder: where its configuration, database and log go.
    """

    def __init__(self, folder: Path) -> None:
        viewer_packages()
        binary = shutil.which("Orthanc") or "/usr/sbin/Orthanc"
        plugins = glob("/usr/share/orthanc/plugins/libOrthancDicomWeb.so*")
        assert plugins, "Debian's orthanc-dicomweb plugin is not installed (tools/install_viewer_packages.sh)"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.dicomweb = f"{self.url}/dicom-web"
        config = {
            "Name": "sam-med3d-tests",
            "StorageDirectory": str(folder / "db"),
            "IndexDirectory": str(folder / "db"),
            "HttpPort": self.port,
            "DicomServerEnabled": False,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "Plugins": [plugins[0]],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
        }
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "orthanc.json").write_text(json.dumps(config, indent=4), encoding="utf-8")
        self.log = folder / "orthanc.log"
        with self.log.open("w", encoding="utf-8") as out:
            self.proc = subprocess.Popen([binary, str(folder / "orthanc.json")], stdout=out, stderr=subprocess.STDOUT)
        self._wait_up()

    def _wait_up(self, timeout: float = 60) -> None:
        import requests

        deadline = time.time() + timeout
        while time.time() < deadline:
            assert self.proc.poll() is None, f"Orthanc ended at start:\n{self.log.read_text(encoding='utf-8')[-2000:]}"
            try:
                if requests.get(f"{self.url}/system", timeout=2).status_code == 200:
                    return
            except requests.ConnectionError:
                time.sleep(0.2)
        raise AssertionError(f"Orthanc did not answer in {timeout} s")

    def upload(self, folder: Path) -> None:
        """Store every ``*.dcm`` file of ``folder`` (Orthanc's REST API)."""
        import requests

        for path in sorted(Path(folder).glob("*.dcm")):
            answer = requests.post(f"{self.url}/instances", data=path.read_bytes(), timeout=30)
            assert answer.status_code == 200, answer.text

    def series_of_modality(self, modality: str) -> list[dict]:
        """The stored series of a modality as DICOMweb (QIDO-RS) JSON."""
        import requests

        answer = requests.get(f"{self.dicomweb}/series", params={"Modality": modality}, timeout=30)
        answer.raise_for_status()
        return answer.json() if answer.text.strip() else []

    def instance_files(self, series_uid: str) -> list[bytes]:
        """The DICOM files of a stored series (Orthanc's REST API)."""
        import requests

        found = requests.post(
            f"{self.url}/tools/find", json={"Level": "Instance", "Query": {"SeriesInstanceUID": series_uid}}, timeout=30
        ).json()
        return [requests.get(f"{self.url}/instances/{i}/file", timeout=30).content for i in found]

    def stop(self) -> None:
        """Stop the server."""
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
