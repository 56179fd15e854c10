#!/usr/bin/env bash
# Installs what Squeeze needs on Debian 12 when it is missing, then builds.
#   scripts/setup.sh          system libraries, release build of the `squeeze` tool
#   scripts/setup.sh --test   also numpy, safetensors and h5py (interoperability tests) and Chromium (the HTML
#                             report's test), optimised build with tests
# Needs a Swift 6 toolchain on PATH (or in /opt/swift).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v swift >/dev/null || export PATH="/opt/swift/usr/bin:$PATH"

packages=(libopenblas-dev libhdf5-dev pkg-config)
if [ "${1:-}" = "--test" ]; then packages+=(chromium); fi   # the HTML report's test loads the page in headless Chromium
missing=()
for package in "${packages[@]}"; do
    dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if ((${#missing[@]})); then
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
    echo "installing ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ "${1:-}" = "--test" ]; then
    python3 -c "import numpy, safetensors, h5py" 2>/dev/null || python3 -m pip install -q numpy safetensors h5py
    swift build -c release --build-tests -Xswiftc -enable-testing
else
    swift build -c release
fi
