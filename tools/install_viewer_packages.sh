#!/usr/bin/env bash
# The Debian packages the viewer tests run for real: a DICOMweb store (Orthanc with its DICOMweb plugin) and a browser
# for OHIF (Chromium and its WebDriver). Idempotent and non-interactive: installs only what is missing (needs root).
set -euo pipefail
packages=(orthanc orthanc-dicomweb chromium chromium-driver fonts-liberation)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
    echo "error: the viewer tests need the Debian packages ${missing[*]}: run $0 as root (or apt-get install them)" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
