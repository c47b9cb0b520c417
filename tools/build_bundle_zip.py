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
"""Build the Model Zoo release file ``<name>_v<version>.zip`` of the bundle.

The zip holds one top-level folder ``<name>/`` (what ``monai.bundle download`` expects) with the bundle's files:
configs, scripts, docs, sample data, ``LICENSE``, ``large_files.yml`` and the demo model that git holds
(``models/demo_model.pt``). Left out: the outputs folder ``eval/``, everything else under ``models/`` (weights and
exported modules; ``download_large_files`` fetches the released weights into the installed copy), caches and hidden
files. The version is the one of
``configs/metadata.json``. Entries are sorted and dated 1980-01-01, so the same files give the same zip bytes.

From the repository root::

    python tools/build_bundle_zip.py --out_dir dist
    python -m monai.bundle download --name sam_med3d_interactive_ct_mri \\
        --url file://$PWD/dist/sam_med3d_interactive_ct_mri_v<version>.zip --bundle_dir <dir>
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_NAME = "sam_med3d_interactive_ct_mri"
# Top-level folders of the bundle that are not packaged: outputs, and weights that ``large_files.yml`` fetches.
EXCLUDED_FOLDERS = ("eval", "models")
# Files of ``models/`` that are packaged all the same: the small demo model kept in git.
SHIPPED_MODELS = ("models/demo_model.pt",)
EXCLUDED_NAMES = ("__pycache__",)
EXCLUDED_SUFFIXES = (".pyc", ".pyo")
_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest date a zip entry can hold


def bundle_files(bundle_dir: Path) -> Iterator[Path]:
    """The files to package, relative to ``bundle_dir``, sorted.

    Args:
        bundle_dir: the bundle folder (the one with ``configs/metadata.json``).
    """
    for path in sorted(bundle_dir.rglob("*")):
        relative = path.relative_to(bundle_dir)
        parts = relative.parts
        if relative.as_posix() not in SHIPPED_MODELS and (
            parts[0] in EXCLUDED_FOLDERS or any(p in EXCLUDED_NAMES or p.startswith(".") for p in parts)
        ):
            continue
        if path.is_file() and not path.is_symlink() and path.suffix not in EXCLUDED_SUFFIXES:
            yield relative


def build_zip(bundle_dir: str | os.PathLike, out_dir: str | os.PathLike, name: str = DEFAULT_NAME) -> Path:
    """Write ``<out_dir>/<name>_v<version>.zip`` and return its path.

    Args:
        bundle_dir: the bundle folder.
        out_dir: where to write the zip (created if needed; an existing zip of the same version is replaced).
        name: the bundle's name: the zip's top-level folder and the ``--name`` of ``monai.bundle download``.

    Raises:
        FileNotFoundError: ``bundle_dir`` has no ``configs/metadata.json`` or no ``LICENSE``.
        ValueError: the metadata has no ``version``, or the version is not in its ``changelog``.
    """
    bundle = Path(bundle_dir).resolve()
    for required in ("configs/metadata.json", "LICENSE"):
        if not (bundle / required).is_file():
            raise FileNotFoundError(f"{bundle} is not a bundle folder: {required} is missing.")
    metadata = json.loads((bundle / "configs" / "metadata.json").read_text(encoding="utf-8"))
    version = metadata.get("version")
    if not version:
        raise ValueError(f"{bundle}/configs/metadata.json has no version.")
    if version not in metadata.get("changelog", {}):
        raise ValueError(f"version {version} is not in the changelog of {bundle}/configs/metadata.json.")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"{name}_v{version}.zip"
    tmp = target.with_name(f".{target.name}.partial-{os.getpid()}")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for relative in bundle_files(bundle):
            entry = zipfile.ZipInfo(f"{name}/{relative.as_posix()}", date_time=_EPOCH)
            entry.external_attr = 0o100644 << 16  # a regular file, rw-r--r--
            entry.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(entry, (bundle / relative).read_bytes())
    os.replace(tmp, target)  # never leave a half-written zip under the final name
    return target


def main(argv: list[str] | None = None) -> Path:
    """Command line: build the zip and print its path, size and sha1 (the zoo records the sha1).

    Args:
        argv: the arguments (``sys.argv[1:]`` when ``None``).
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle_dir", default=str(ROOT / "bundle"), help="the bundle folder (default: bundle/)")
    parser.add_argument("--out_dir", default=str(ROOT / "dist"), help="where to write the zip (default: dist/)")
    parser.add_argument("--name", default=DEFAULT_NAME, help=f"bundle name (default: {DEFAULT_NAME})")
    args = parser.parse_args(argv)
    path = build_zip(args.bundle_dir, args.out_dir, args.name)
    sha1 = hashlib.sha1(path.read_bytes()).hexdigest()
    print(f"{path} {path.stat().st_size} bytes sha1 {sha1}")
    return path


if __name__ == "__main__":
    main()
