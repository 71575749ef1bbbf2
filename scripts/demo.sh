#!/usr/bin/env bash
# The newcomer's first command: build ringmaster, make a governed repository
# from the built-in sample tenant, and show validate and plan on it.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --quiet
bin=target/release/ringmaster
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$bin" init "$work/contoso"
echo
echo "\$ ringmaster validate contoso"
"$bin" validate "$work/contoso" || true
echo
echo "\$ ringmaster plan contoso vpn-6.2.1-finance"
"$bin" plan "$work/contoso" vpn-6.2.1-finance
