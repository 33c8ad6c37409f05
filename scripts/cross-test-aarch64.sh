#!/usr/bin/env bash
# scripts/cross-test-aarch64.sh — build tq for 64-bit ARM (AArch64) with the
# GNU cross compiler and run its C tests under qemu-user, once per kernel
# table: the NEON table (what an AArch64 build runs by default) and the
# scalar ref table (the *_ref tests, which CMakeLists.txt registers with
# TQ_FORCE_ISA=ref). Then test_kernels and test_fastscan once more with
# TQ_FORCE_ISA=neon, which must select the NEON table.
#
#   scripts/cross-test-aarch64.sh [BUILD_DIR]        (default: build-aarch64)
#
# Needs gcc-aarch64-linux-gnu, libc6-dev-arm64-cross and qemu-user (or
# qemu-user-static). Run as root (or with sudo) it installs what is missing
# with apt-get; otherwise it uses what is installed and stops if something is
# missing. JOBS (default: the number of cores) is the build parallelism; with
# JOBS >= 2 the two passes run side by side (each test program runs its
# threads as host threads, so the emulator scales with cores).
#
# Not run under emulation (left out of cross builds by CMakeLists.txt): the
# tests that a host script drives with Python (python, format_oracle, cli,
# test_vectors' numpy check), and HDF5 input (no aarch64 libhdf5 here).
#
# QEMU_CPU (default cortex-a72) picks the emulated core: a baseline ARMv8.0-A
# one, so an instruction beyond baseline NEON would fail here as on the
# oldest AArch64 machines, and quicker to emulate than qemu's "max" (whose SVE
# glibc's string functions then use).
set -euo pipefail

cd "$(dirname "$0")/.."
BUILD=${1:-build-aarch64}
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 2)}
export QEMU_CPU=${QEMU_CPU:-cortex-a72}

have_tools() {
    command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 &&
        [ -e /usr/aarch64-linux-gnu/include/stdio.h ] &&
        { command -v qemu-aarch64 >/dev/null 2>&1 || command -v qemu-aarch64-static >/dev/null 2>&1; }
}

SUDO=
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then
    SUDO=sudo
fi
if ! have_tools; then
    if [ "$(id -u)" -eq 0 ] || [ -n "$SUDO" ]; then
        export DEBIAN_FRONTEND=noninteractive
        $SUDO apt-get update
        $SUDO apt-get install -y --no-install-recommends cmake make gcc-aarch64-linux-gnu libc6-dev-arm64-cross \
            qemu-user
    else
        echo "cross-test-aarch64: not root and no sudo: using the tools already installed" >&2
    fi
fi
if ! have_tools; then
    echo "cross-test-aarch64: needs aarch64-linux-gnu-gcc, libc6-dev-arm64-cross and qemu-aarch64" >&2
    exit 1
fi

# qemu-aarch64 from qemu-user, or the static one from qemu-user-static
QEMU=qemu-aarch64
command -v "$QEMU" >/dev/null 2>&1 || QEMU=qemu-aarch64-static

echo "== cross build (aarch64, $(aarch64-linux-gnu-gcc -dumpfullversion), tests under $QEMU -cpu $QEMU_CPU)"
cmake -S . -B "$BUILD" -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake -DCMAKE_BUILD_TYPE=Release \
    "-DCMAKE_CROSSCOMPILING_EMULATOR=$QEMU;-L;/usr/aarch64-linux-gnu"
cmake --build "$BUILD" -j "$JOBS"

# One ctest per kernel table; side by side when there are two cores or more
# (each writes its own log; ctest's Testing/Temporary files are shared, so
# read the logs below, not those).
run_pass() { # NAME CTEST-ARGS...
    local name=$1
    shift
    ctest --test-dir "$BUILD" --output-on-failure "$@" >"$BUILD/ctest-$name.log" 2>&1
}
NEON_ARGS=(-E '_ref$')
REF_ARGS=(-R '_ref$')
start=$(date +%s)
rc_neon=0
rc_ref=0
if [ "$JOBS" -ge 2 ]; then
    run_pass neon "${NEON_ARGS[@]}" &
    pid_neon=$!
    run_pass ref "${REF_ARGS[@]}" &
    pid_ref=$!
    wait "$pid_neon" || rc_neon=$?
    wait "$pid_ref" || rc_ref=$?
else
    run_pass neon "${NEON_ARGS[@]}" || rc_neon=$?
    run_pass ref "${REF_ARGS[@]}" || rc_ref=$?
fi
echo "== tests under qemu, NEON table (the default)"
cat "$BUILD/ctest-neon.log"
echo "== tests under qemu, ref table (TQ_FORCE_ISA=ref)"
cat "$BUILD/ctest-ref.log"
echo "== both passes: $(($(date +%s) - start)) s"

echo "== TQ_FORCE_ISA=neon selects the NEON table"
rc_force=0
TQ_FORCE_ISA=neon ctest --test-dir "$BUILD" --output-on-failure -R '^test_(kernels|fastscan)$' || rc_force=$?

if [ "$rc_neon" -ne 0 ] || [ "$rc_ref" -ne 0 ] || [ "$rc_force" -ne 0 ]; then
    echo "cross-test-aarch64: FAILED (neon pass $rc_neon, ref pass $rc_ref, forced neon $rc_force)" >&2
    exit 1
fi
echo "cross-test-aarch64: all passed"
