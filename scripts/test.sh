#!/usr/bin/env bash
# One command on a fresh Debian 12: install every test dependency (PostgreSQL, nats-server,
# coturn, Chromium, npm packages), build, and run all tests through ctest (labels: unit,
# integration, browser, fuzz, build). ctest's summary is the last thing printed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh test
(cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
bash scripts/build.sh -DPARLEY_TESTS=ON
cd "${BUILD_DIR:-build}"
exec ctest --output-on-failure --timeout 600 -j1 "$@"
