#!/usr/bin/env bash
# Writes link/symbol-order.txt: the functions a release `ringmaster` runs,
# hottest first, for the linker to lay out together (build.rs passes the file
# to lld on release builds).
#
# Why: the kernel maps a program's code 64 KiB at a time around each page it
# runs (fault-around), and the code a run needs is spread over all 30 MB of
# text. A first `serve --once` of a 10,000-intent tenant had 25-27 MB of the
# binary resident, for about 6.5 MB of functions it ever ran. Laid out
# together, those functions take that many pages and no more.
#
# The file is a profile: names the build no longer has are skipped (a stale
# file costs memory, never correctness). Regenerate it after a toolchain or
# Cargo.lock change, or when many functions were added:
#
#   cargo build --release --locked && scripts/symbol-order.sh
#
# Needs valgrind (callgrind). Runs the binary on a generated 200-intent
# tenant: two `serve --once` passes on simulated planes, then `validate`.
set -euo pipefail

cd "$(dirname "$0")/.."
binary=${1:-${CARGO_TARGET_DIR:-target}/release/ringmaster}
out=link/symbol-order.txt
[[ -x $binary ]] || { echo "symbol-order: no binary at $binary (build it: cargo build --release --locked)" >&2; exit 2; }
command -v valgrind >/dev/null || { echo "symbol-order: needs valgrind (apt-get install valgrind)" >&2; exit 2; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "symbol-order: a 200-intent tenant in $work" >&2
"$binary" generate "$work/governed" --intents 200 >/dev/null
"$binary" keygen --out "$work/keys" >/dev/null
printf 'planes:\n  intune: {type: sim}\n  jamf: {type: sim}\n  sccm: {type: sim}\n  landscape: {type: sim}\n  ansible: {type: sim}\n' \
    >"$work/keys/ringmaster-daemon.yaml"

profile() { # name, args...
    local name=$1
    shift
    echo "symbol-order: callgrind ringmaster $1 ..." >&2
    valgrind --tool=callgrind --dump-instr=no --demangle=no \
        --callgrind-out-file="$work/$name.cg" "$binary" "$@" >/dev/null 2>"$work/$name.err" || {
        echo "symbol-order: ringmaster $* failed:" >&2
        tail -n 20 "$work/$name.err" >&2
        exit 1
    }
}
serve=(serve --repo "$work/governed" --state "$work/state" --key "$work/keys/ringmaster.key"
    --config "$work/keys/ringmaster-daemon.yaml" --once)
profile first "${serve[@]}" --now 2026-12-01T09:00:00Z
profile second "${serve[@]}" --now 2026-12-01T13:30:00Z
profile validate validate "$work/governed"

# Self cost per function of the binary, summed over the runs; only names
# the binary defines (not libc's, not addresses).
nm --defined-only "$binary" | awk '$2 ~ /^[tTwW]$/ {print $3}' | sort -u >"$work/defined"
real=$(realpath "$binary")
for run in first second validate; do
    callgrind_annotate --threshold=100 --inclusive=no "$work/$run.cg" 2>/dev/null
done | awk -v object="[$real]" '
    $NF == object && $2 ~ /^\(/ {
        cost = $1; gsub(",", "", cost)
        name = $(NF - 1); sub(/^[^:]*:/, "", name)
        total[name] += cost
    }
    END { for (name in total) print total[name], name }' |
    sort -k1,1nr -k2,2 | awk '{print $2}' >"$work/ranked"
awk 'NR == FNR {defined[$1] = 1; next} defined[$1]' "$work/defined" "$work/ranked" >"$work/order"

mkdir -p link
{
    echo "# Functions a release ringmaster runs, hottest first: lld lays them out"
    echo "# together (build.rs). Made by scripts/symbol-order.sh; do not edit."
    echo "# $(wc -l <"$work/order") functions; $("$binary" --version)."
    cat "$work/order"
} >"$out"
echo "symbol-order: $(wc -l <"$work/order") functions written to $out" >&2
