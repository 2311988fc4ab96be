#!/usr/bin/env bash
# Installs what basin needs from Debian's packages (only what is missing), then configures and
# builds basin in ./build. Safe to run again: with everything present it only rebuilds what changed.
#
#   ./install.sh            install missing packages, configure, build
#   ./install.sh --deps     install missing packages only
#
# The CUDA toolkit is not a Debian package: when /usr/local/cuda (or nvcc on PATH) exists the CUDA
# parts are built too, otherwise they are skipped and the configure summary says so.
set -euo pipefail
cd "$(dirname "$0")"

packages=(
  g++ cmake ninja-build                     # toolchain
  libhwloc-dev hwloc                        # topology discovery (hwloc), lstopo for XML exports
  nlohmann-json3-dev                        # JSON
  libboost-graph-dev                        # Boost.Graph
  libcli11-dev                              # command line
  catch2                                    # tests
  libbenchmark-dev                          # micro-benchmarks
  libgloo-dev                               # CPU collectives
  redis-server                              # comm tests: a Redis rendezvous on a loopback port
  libturbojpeg0-dev                         # JPEG decoding (TurboJPEG API)
  libjpeg62-turbo-dev                       # JPEG region decoding (the same library's libjpeg API)
  libdnnl-dev                               # oneDNN: CPU deep-learning ops
  valgrind                                  # leak check of the NCCL tuner plugin (tests)
  python3-torch python3-torchvision         # reference outputs for the executor's tests
)

missing=()
for p in "${packages[@]}"; do
  [[ $p == \#* ]] && continue
  status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
  [[ $status == installed ]] || missing+=("$p")
done

if ((${#missing[@]})); then
  echo "install.sh: installing ${missing[*]}"
  sudo=""
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || { echo "install.sh: need root or sudo to install ${missing[*]}" >&2; exit 1; }
    sudo="sudo"
  fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "install.sh: all ${#packages[@]} packages present"
fi

[[ ${1:-} == --deps ]] && exit 0

generator=()
[[ -f build/CMakeCache.txt ]] || generator=(-G Ninja)
cmake -S . -B build "${generator[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build build
