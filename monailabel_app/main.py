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
"""MONAI Label app serving the SAM-Med3D bundle to 3D Slicer and OHIF as a ``deepgrow`` (click) model.

Start it with ``python -m monailabel.main start_server --app monailabel_app --studies <folder or DICOMweb URL> --host
127.0.0.1 --port 8000 --log_config monailabel_app/logging.json``. Options (``--conf <name> <value>``): ``bundle``
(default: ``bundle/`` next to this folder; any installed copy of the bundle, e.g. a Model Zoo download), ``weights`` (a
weights file instead of the bundle's lookup), ``labels`` (comma-separated names the viewers list; default: the names of
the bundle's ``sample_data/labels.json``), ``cache_images`` (prepared images kept, default 8), ``cache_mb`` (megabytes
kept, default a quarter of the machine's memory; 0: no bound), ``max_windows`` (default 8, as ``inference.json``),
``device`` (default ``cpu``, or ``cuda`` when available). Nothing is downloaded: a DICOMweb source needs dcmqi's
``itkimage2segimage`` (the ``dcmqi`` wheel of ``requirements-monailabel.txt``) for DICOM SEG labels.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import sysconfig
import time
from pathlib import Path
from typing import NoReturn

import torch
from fastapi import HTTPException, Request
from fastapi.responses import FileResponse, JSONResponse
from monailabel.config import settings
from monailabel.interfaces.app import MONAILabelApp
from monailabel.interfaces.datastore import Datastore
from monailabel.interfaces.tasks.infer_v2 import InferTask
from monailabel.interfaces.tasks.strategy import Strategy
from monailabel.tasks.activelearning.first import First
from monailabel.tasks.activelearning.random import Random

logger = logging.getLogger(__name__)

# This app's folder (``lib/`` is imported from it).
APP_DIR = Path(__file__).resolve().parent
# The bundle served when no ``bundle`` option is given: the repository's ``bundle/`` next to this app.
DEFAULT_BUNDLE = APP_DIR.parent / "bundle"
# The model's name in /info/ and in /infer/<model>.
MODEL_NAME = "sam_med3d"
# Chunks of the files the server sends (MONAI Label answers with FastAPI's FileResponse).
ANSWER_CHUNK_BYTES = 4 << 20
# How long the datastore's status in /info/ is reused (s): MONAI Label asks for /info/'s content on every click.
INFO_SECONDS = 5.0
# dcmqi's converter that MONAI Label runs to store a label as DICOM SEG in a DICOMweb source.
DCMQI_TOOL = "itkimage2segimage"
# The label OHIF's point prompts take their negative clicks from (its panel sends the points of "background" as
# ``background``); value 0, as in MONAI Label's own click models.
BACKGROUND = "background"


def _fail(message: str) -> NoReturn:
    """End the server at start with one ``error:`` line (a traceback from the start-up hook would bury it)."""
    print(f"error: {message}", file=sys.stderr, flush=True)
    logging.shutdown()
    os._exit(1)


def _import_bundle(bundle: Path):
    """Put the bundle's root on ``sys.path`` (as its configs' ``scripts`` id does) and return its ``scripts``."""
    if not (bundle / "scripts" / "__init__.py").is_file():
        _fail(f"{bundle} is not the SAM-Med3D bundle (no scripts/ there): pass --conf bundle <bundle folder>.")
    sys.path.insert(0, str(bundle))
    import scripts  # noqa: PLC0415 (the bundle is found only now)

    return scripts


def _weights_named(conf: dict[str, str], bundle: Path) -> str:
    """``"<weights file>: "`` for an error message, when the file is known."""
    from scripts import find_weights  # noqa: PLC0415

    try:
        return f"{conf.get('weights') or find_weights(bundle / 'models')}: "
    except FileNotFoundError:
        return ""


def label_names(bundle: Path, conf: dict[str, str]) -> dict[str, int]:
    """The names the viewers list, with their values: ``--conf labels a,b`` (values 1, 2, ...), else the structures of
    the bundle's label table (``sample_data/labels.json``, TotalSegmentator ids), else ``object``; and
    :data:`BACKGROUND` (0).

    Args:
        bundle: the bundle folder.
        conf: the ``--conf`` options.
    """
    table = bundle / "sample_data" / "labels.json"
    if conf.get("labels"):
        names = [n.strip() for n in conf["labels"].split(",") if n.strip() and n.strip() != BACKGROUND]
        labels = {name: i + 1 for i, name in enumerate(names)}
    elif table.is_file():
        total = json.loads(table.read_text(encoding="utf-8"))["total"]
        labels = {name: int(value) for value, name in sorted(total.items(), key=lambda item: int(item[0]))}
    else:
        labels = {"object": 1}
    return {**labels, BACKGROUND: 0}


def default_cache_mb() -> float:
    """The image cache's default bound: a quarter of this machine's memory (MB)."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 4 / 1e6


def _find_dcmqi() -> str | None:
    """The folder of dcmqi's converter: on PATH, or beside this Python (a venv's ``bin/`` that is not on PATH)."""
    found = shutil.which(DCMQI_TOOL)
    if found:
        return os.path.dirname(found)
    for folder in (sysconfig.get_path("scripts"), os.path.dirname(sys.executable)):
        if os.access(os.path.join(folder, DCMQI_TOOL), os.X_OK):
            return folder
    return None


def _malformed_params(_: Request, error: json.JSONDecodeError) -> JSONResponse:
    return JSONResponse(
        status_code=400,
        content={"detail": f"error: the request's params are not valid JSON ({error.msg} at character {error.pos})."},
    )


class SamMed3DApp(MONAILabelApp):
    """The app: one click model, ``sam_med3d``, over the bundle's interactive session; no trainer.

    Args:
        app_dir: this folder.
        studies: the studies folder (or a DICOMweb URL).
        conf: the ``--conf`` options (see the module docstring).
    """

    def __init__(self, app_dir: str, studies: str, conf: dict[str, str]) -> None:
        if str(APP_DIR) not in sys.path:  # MONAI Label loads main.py from its path; lib/ is found beside it
            sys.path.insert(0, str(APP_DIR))
        self.bundle = Path(conf.get("bundle") or DEFAULT_BUNDLE).expanduser().resolve()
        self._info: tuple[float, dict] | None = None
        scripts = _import_bundle(self.bundle)
        from scripts.errors import USER_ERRORS  # noqa: PLC0415

        device = conf.get("device") or ("cuda" if torch.cuda.is_available() else "cpu")
        try:
            self.cache_images = int(conf.get("cache_images", 8))
            self.cache_mb = float(conf.get("cache_mb", default_cache_mb()))
            self.max_windows = int(conf.get("max_windows", 8))
            self.network = scripts.load_network(
                self.bundle / "models", weights=conf.get("weights") or None, device=device
            )
        except USER_ERRORS as e:
            _fail(f"{_weights_named(conf, self.bundle)}{str(e).strip().splitlines()[0]}")
        self.label_ids = label_names(self.bundle, conf)
        self.dicomweb = studies.startswith(("http://", "https://"))
        # read each series' folder as it comes from the store (ITK, as the command line reads DICOM): MONAI Label would
        # first convert it to a gzip NIfTI in the system's temp folder, seconds per image, and leave that file behind
        # (SeriesFolderDatastore makes saving labels work without it)
        settings.MONAI_LABEL_DICOMWEB_CONVERT_TO_NIFTI = False
        metadata = json.loads((self.bundle / "configs" / "metadata.json").read_text(encoding="utf-8"))
        super().__init__(
            app_dir=app_dir,
            studies=studies,
            conf=conf,
            name="SAM-Med3D",
            description=metadata.get("description", "SAM-Med3D"),
            version=metadata.get("version", ""),
            labels=list(self.label_ids),  # a list: OHIF's panel appends to it (a dict crashes it on connect)
        )

    def _init_dicomweb_datastore(self) -> Datastore:
        """MONAI Label's DICOMweb datastore, reading each series as its folder (:class:`SeriesFolderDatastore`)."""
        from lib.datastore import SeriesFolderDatastore  # noqa: PLC0415 (lib/ is found beside this file)

        store = super()._init_dicomweb_datastore()
        store.__class__ = SeriesFolderDatastore  # the same datastore, with saving labels fixed (no state of its own)
        return store

    def _download_dcmqi_tools(self) -> None:
        """Find dcmqi's converter instead of downloading it: MONAI Label fetches it from GitHub when it is not on PATH,
        which ends start-up offline. The ``dcmqi`` wheel installs it beside this Python; that folder goes on PATH."""
        folder = _find_dcmqi()
        if folder is None:
            _fail(
                f"a DICOMweb studies source needs dcmqi's {DCMQI_TOOL} to store labels as DICOM SEG, and it is not "
                "installed: pip install --no-deps -r requirements-monailabel.txt (it pins dcmqi)."
            )
        os.environ["PATH"] = os.pathsep.join([folder, os.environ.get("PATH", "")])

    def init_infers(self) -> dict[str, InferTask]:
        """The click model (``deepgrow``, dimension 3)."""
        from lib.infer import SamMed3DInfer  # noqa: PLC0415 (needs the bundle on sys.path)

        try:
            task = SamMed3DInfer(
                self.network,
                self.label_ids,
                self.cache_images,
                self.cache_mb,
                self.max_windows,
                answers_dir=os.path.join(self.app_dir, "answers"),
                warm_up_dicom=self.dicomweb,
            )
        except ValueError as e:
            _fail(str(e))
        return {MODEL_NAME: task}

    def info(self) -> dict:
        """MONAI Label's ``/info/``, computed at most every :data:`INFO_SECONDS`: MONAI Label 0.8.5 calls it for every
        click only to read a key it does not hold, and its datastore status lists the whole store (for a DICOMweb
        source, two searches of the server per click)."""
        now = time.monotonic()
        if self._info is None or now - self._info[0] > INFO_SECONDS:
            self._info = (now, super().info())
        return self._info[1]

    def init_strategies(self) -> dict[str, Strategy]:
        """Which image to annotate next."""
        return {"first": First(), "random": Random()}

    def on_init_complete(self) -> None:
        """Malformed ``params`` JSON gets an HTTP 400 with one line (MONAI Label would answer a bare 500); answers are
        sent in large chunks."""
        super().on_init_complete()
        from monailabel.app import app  # noqa: PLC0415 (the server's FastAPI app, imported by the server itself)

        app.add_exception_handler(json.JSONDecodeError, _malformed_params)
        app.middleware_stack = None  # rebuilt with the handler on the next request
        # an answer is the image's whole grid (78 MB of raw NRRD for OHIF at 512x512x300): sent in 64 KB chunks, one
        # thread hop each, it took 260 ms more than in 4 MB chunks
        FileResponse.chunk_size = ANSWER_CHUNK_BYTES

    def infer(self, request: dict, datastore=None) -> dict:
        """Refuse image ids that are not images of the datastore (unknown, or a path out of the studies folder).

        Args:
            request: the infer request (``model``, ``image`` id, the click parameters).
            datastore: the datastore (default: the app's).
        """
        image_id = request.get("image")
        store = datastore or self.datastore()
        uri = store.get_image_uri(image_id) if isinstance(image_id, str) and image_id else ""
        if not uri:
            raise HTTPException(
                status_code=404,
                detail=f"error: no image {image_id!r} in the datastore: give the id of a stored image "
                "(GET /datastore/?output=all lists them; POST /datastore/?image=<id> adds one).",
            )
        studies = os.path.realpath(self.studies)
        if (
            not self.studies.startswith(("http://", "https://"))
            and os.path.commonpath([os.path.realpath(uri), studies]) != studies
        ):
            raise HTTPException(status_code=400, detail=f"error: the image {image_id!r} is outside the studies folder.")
        return super().infer(request, datastore)
