#!/usr/bin/env bash
# What stslib costs to ship and run:
#   - stripped release binary size, default features (tls) and
#     --no-default-features (no TLS, no emulator);
#   - packages in Cargo.lock, and packages compiled for each feature set;
#   - clean release build time (fresh CARGO_TARGET_DIR; skip with
#     --skip-build-time, then builds go to target/footprint/ incrementally);
#   - peak RSS of `stslib whoami` and `stslib credential-process` against the local
#     emulator (benches/footprint_rss.rs, run on the release binary).
#
# Usage: benches/footprint.sh [--skip-build-time]
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

skip_build_time=0
for arg in "$@"; do
    case "$arg" in
        --skip-build-time) skip_build_time=1 ;;
        -h | --help)
            sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        *)
            echo "footprint.sh: unknown argument $arg" >&2
            exit 2
            ;;
    esac
done

echo "== footprint"
echo "   machine: $(nproc) cpus, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "   $(rustc --version), $(cargo --version)"

tmp_dirs=()
build_times=()
cleanup() {
    for d in "${tmp_dirs[@]+"${tmp_dirs[@]}"}"; do rm -rf "$d"; done
}
trap cleanup EXIT

# build NAME [cargo args...]: a release build of the binary into its own
# target dir, left in $built_dir; clean and timed unless --skip-build-time.
build() {
    local name=$1
    shift
    if [ "$skip_build_time" = 1 ]; then
        built_dir="$root/target/footprint/$name"
        CARGO_TARGET_DIR="$built_dir" cargo build --release --locked --bin stslib "$@" >&2
        build_times+=("   clean release build time, $name: skipped (--skip-build-time)")
    else
        built_dir=$(mktemp -d "${TMPDIR:-/tmp}/stslib-footprint-$name.XXXXXX")
        tmp_dirs+=("$built_dir")
        local t0 t1
        t0=$(date +%s.%N)
        CARGO_TARGET_DIR="$built_dir" cargo build --release --locked --bin stslib "$@" >&2
        t1=$(date +%s.%N)
        build_times+=("$(awk -v a="$t0" -v b="$t1" -v n="$name" -v j="$(nproc)" \
            'BEGIN { printf "   clean release build time, %s: %.0f s (%s cpus, shared)", n, b - a, j }')")
    fi
}

size_line() {
    local label=$1 bin=$2 bytes stripped
    bytes=$(stat -c %s "$bin")
    if command -v strip >/dev/null; then
        strip -o "$bin.stripped" "$bin"
        stripped=$(stat -c %s "$bin.stripped")
    else
        stripped=$bytes
    fi
    awk -v l="$label" -v s="$stripped" -v b="$bytes" \
        'BEGIN { printf "   binary, %s: %d bytes stripped (%.2f MiB; as built %d bytes)\n", l, s, s / 1048576, b }'
}

packages() {
    cargo tree --locked -e normal,build --prefix none -f '{p}' "$@" 2>/dev/null |
        sed 's/ (\*)$//' | sed '/^$/d' | sort -u | wc -l
}

build default
default_dir=$built_dir
build no-tls --no-default-features
notls_dir=$built_dir
printf '%s\n' "${build_times[@]}"
size_line "default features (tls)" "$default_dir/release/stslib"
size_line "--no-default-features (no TLS, no emulator)" "$notls_dir/release/stslib"
echo "   Cargo.lock: $(grep -c '^\[\[package\]\]' Cargo.lock) packages (all targets, dev-dependencies included)"
echo "   compiled for the binary (normal + build deps, this platform, stslib included): default $(packages) packages, --no-default-features $(packages --no-default-features) packages"

# Peak RSS: the emulator runs inside the bench; the binary is the release one
# (copied out of a temporary target dir that is removed on exit).
bin_copy=$(mktemp "${TMPDIR:-/tmp}/stslib-footprint-bin.XXXXXX")
tmp_dirs+=("$bin_copy")
cp "$default_dir/release/stslib" "$bin_copy"
chmod +x "$bin_copy"
STSLIB_BIN="$bin_copy" cargo bench --quiet --locked --bench footprint_rss
