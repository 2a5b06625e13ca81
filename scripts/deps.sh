#!/usr/bin/env bash
# Installs Debian 12 packages, idempotently. Usage: deps.sh build|test
set -euo pipefail

build_pkgs=(build-essential cmake ninja-build pkg-config
  libpoco-dev libsodium-dev libzmq3-dev cppzmq-dev libyaml-cpp-dev libspdlog-dev libfmt-dev
  libsimdjson-dev libpq-dev libnats-dev libgtest-dev libgmock-dev libssl-dev)
test_pkgs=(clang-14 clang-format-14 libclang-rt-14-dev postgresql postgresql-common nats-server coturn
  chromium chromium-driver nodejs npm curl procps iproute2 systemd
  golang-go golang-github-gorilla-websocket-dev openssl)

want=("${build_pkgs[@]}")
[[ "${1:-build}" == test ]] && want+=("${test_pkgs[@]}")

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# node/npm may come from outside Debian on some machines: accept working binaries.
if command -v node >/dev/null && command -v npm >/dev/null; then
  tmp=(); for p in "${missing[@]}"; do [[ $p == nodejs || $p == npm ]] || tmp+=("$p"); done
  missing=("${tmp[@]+"${tmp[@]}"}")
fi
if ((${#missing[@]})); then
  echo "deps: installing ${missing[*]}"
  sudo_cmd=(); [[ $(id -u) -ne 0 ]] && sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -q
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  echo "deps: all ${#want[@]} packages present"
fi
