#!/usr/bin/env bash
# The newcomer's first command: build ringmaster and run `ringmaster demo` —
# the sample tenant rolled out ring by ring on the simulated fleet with an
# accelerated clock (approval, failed canary and rollback, drift and
# remediation, verified evidence), in well under a minute.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --quiet
# Honour CARGO_TARGET_DIR, as cargo does, so the binary just built is the one run.
exec "${CARGO_TARGET_DIR:-target}/release/ringmaster" demo "$@"
