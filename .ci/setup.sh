#!/usr/bin/env bash
# Installs what the tests need on a fresh Debian machine with Node 20: the software WebGPU drivers
# (SwiftShader from Debian's chromium package + the Vulkan loader; Mesa llvmpipe through EGL) and npm packages.
set -euo pipefail
cd "$(dirname "$0")/.."
need=(chromium libvulkan1 libegl1 libegl-mesa0 libgl1-mesa-dri ffmpeg)
missing=()
for p in "${need[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
npm ci --no-audit --no-fund --loglevel=error
