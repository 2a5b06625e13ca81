#!/usr/bin/env bash
# One command on a fresh Debian 12: install build deps, build, run the default profile.
# Open http://127.0.0.1:8080/new_chat afterwards. Ctrl-C (SIGINT) drains and exits.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh build
bash scripts/build.sh
exec build/bin/parleyd "${1:-etc/link-room.yaml}"
