#!/usr/bin/env bash
# Fetch ONNX Runtime C/C++ API headers from Debian 13 (trixie)'s libonnxruntime-dev without touching the
# system's apt configuration: apt runs with a private sources list, list directory and cache.
# The headers (API 21) are forward compatible with any newer libonnxruntime.so.1 (e.g. the onnxruntime wheel).
#
# Usage: cpp/scripts/fetch_ort_headers.sh [DEST]     (default: ${FASTSAM_ORT_HEADERS_DIR:-~/.cache/fastsam/ort-headers})
# Prints the include directory (the one holding onnxruntime_cxx_api.h) on stdout; pass it to CMake as
#   -DONNXRUNTIME_INCLUDE_DIR=<printed dir>   (or export FASTSAM_ORT_HEADERS_DIR=DEST, which CMake also checks).
set -euo pipefail

dest="${1:-${FASTSAM_ORT_HEADERS_DIR:-$HOME/.cache/fastsam/ort-headers}}"
mirror="${FASTSAM_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
suite="${FASTSAM_DEBIAN_SUITE:-trixie}"

find_header() {
    find "$dest" -name onnxruntime_cxx_api.h -print -quit 2>/dev/null
}

existing="$(find_header || true)"
if [[ -n "$existing" ]]; then
    dirname "$existing"
    exit 0
fi

command -v apt-get >/dev/null || { echo "fetch_ort_headers.sh: apt-get not found (Debian/Ubuntu only)" >&2; exit 1; }
command -v dpkg >/dev/null || { echo "fetch_ort_headers.sh: dpkg not found (Debian/Ubuntu only)" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/debs"
echo "deb $mirror $suite main" >"$work/sources.list"

apt_opts=(
    -o "Dir::Etc::SourceList=$work/sources.list"
    -o "Dir::Etc::SourceParts=/dev/null"
    -o "Dir::State::Lists=$work/lists"
    -o "Dir::Cache=$work/cache"
    -o "Debug::NoLocking=1"
    -o "APT::Sandbox::User=root"
)

apt-get "${apt_opts[@]}" -qq update >&2
(cd "$work/debs" && apt-get "${apt_opts[@]}" -qq download libonnxruntime-dev >&2)

mkdir -p "$dest"
for deb in "$work"/debs/*.deb; do
    dpkg -x "$deb" "$dest"
done

header="$(find_header || true)"
if [[ -z "$header" ]]; then
    echo "fetch_ort_headers.sh: libonnxruntime-dev from $suite did not contain onnxruntime_cxx_api.h" >&2
    exit 1
fi
dirname "$header"
