#!/usr/bin/env bash
# run.sh — set up, build and boot the pseries DDW unikernel under QEMU, or run its tests.
#
#   ./run.sh [options] [-- extra QEMU args]   set up, build, boot the default scenario, print the report
#   ./run.sh build                            set up, build; print the kernel ELF and -bios image paths
#   ./run.sh test                             set up, build, run every test (host unit tests + QEMU boots);
#                                             PSERIES_TEST_CPU=POWER8|POWER10 runs the QEMU matrix on that CPU
#   ./run.sh bench [boot|ddw] [--runs N] [--quick]
#                                             set up, build, print boot-time and DDW figures (not tests)
#   ./run.sh fuzz [N]                         fuzz the device-tree parsers and the DDW logic against
#                                             the hypervisor model, N executions per target (default 1000000)
#
# Options for a boot:
#   --firmware slof|vof|bios   firmware path (default slof: QEMU's default firmware)
#   --memory SIZE              guest RAM (default 2G)
#   --cpu MODEL                QEMU CPU model (default: QEMU's, POWER9 on 7.2 pseries)
#   --smp N                    CPUs (default 1)
#   --append "ARGS"            kernel command line (e.g. test=panic); not with --firmware bios
#   --trace FILE               write QEMU's spapr_iommu_* and pci_cfg_* trace to FILE
#   --gdb                      start QEMU stopped, with a gdb server on tcp::1234
#   --timeout SECONDS          kill a hung guest after this long (default 120)
#   --kvm                      boot as L2 under real KVM-HV nested under TCG (the KVM lane:
#                              fetches Debian's ppc64el kernel and QEMU once; VOF; --append,
#                              --memory and --timeout apply)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TARGET=powerpc64le-unknown-linux-gnu
OUT="$ROOT/out"
KERNEL_ELF="$ROOT/target/$TARGET/release/kernel"
KERNEL_BIN="$ROOT/target/$TARGET/release/kernel.bin"
# cap-hpt-max-page-size=16M: 16 MiB hash pages for the kernel's identity map on POWER8 (hash MMU).
MACHINE_CAPS="cap-cfpc=broken,cap-sbbc=broken,cap-ibs=broken,cap-ccf-assist=off,cap-hpt-max-page-size=16M"

say() { printf 'run.sh: %s\n' "$*" >&2; }
die() { printf 'run.sh: error: %s\n' "$*" >&2; exit 1; }

# --- set-up -------------------------------------------------------------------------------

ensure_qemu() {
    command -v qemu-system-ppc64 >/dev/null 2>&1 && return
    say "qemu-system-ppc64 is missing: installing Debian's qemu-system-ppc"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    command -v apt-get >/dev/null 2>&1 || die "qemu-system-ppc64 is missing and apt-get is not available to install it"
    $sudo apt-get update -qq || die "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq qemu-system-ppc >/dev/null \
        || die "apt-get install qemu-system-ppc failed"
    command -v qemu-system-ppc64 >/dev/null 2>&1 || die "qemu-system-ppc was installed but qemu-system-ppc64 is still not on PATH"
}

ensure_toolchain() {
    if ! command -v rustup >/dev/null 2>&1; then
        for dir in "${CARGO_HOME:-$HOME/.cargo}/bin" "$HOME/.cargo/bin"; do
            [ -x "$dir/rustup" ] && export PATH="$dir:$PATH" && break
        done
    fi
    command -v rustup >/dev/null 2>&1 || die "rustup is not installed; install it from your distribution or rustup.rs"
    # RUSTUP_AUTO_INSTALL=0 is set on some machines: install the pinned toolchain explicitly.
    (cd "$ROOT" && rustup toolchain install --no-self-update >/dev/null 2>&1) \
        || (cd "$ROOT" && rustup toolchain install --no-self-update) \
        || die "rustup toolchain install (rust-toolchain.toml) failed"
}

setup() {
    ensure_qemu
    ensure_toolchain
}

# --- build --------------------------------------------------------------------------------

build() {
    say "building the kernel (release, $TARGET)"
    (cd "$ROOT" && cargo build --quiet --release -p kernel --target "$TARGET") || die "kernel build failed"
    (cd "$ROOT" && cargo run --quiet --release -p tests --bin mkimage -- "$KERNEL_ELF" "$KERNEL_BIN") \
        || die "building the -bios image failed"
}

# --- boot ---------------------------------------------------------------------------------

make_disk() {
    # A 64 MiB raw disk with a recognisable pattern in every sector (not a scratch disk: the
    # kernel only ever writes disks whose sector 0 starts with PSERIES-DDW-SCRATCH).
    local disk="$OUT/disk.img"
    mkdir -p "$OUT"
    if [ ! -f "$disk" ]; then
        python3 - "$disk" <<'PY'
import struct, sys
with open(sys.argv[1], "wb") as f:
    for sector in range(64 * 2048):
        f.write(struct.pack("<Q", sector) * 64)
PY
    fi
    echo "$disk"
}

boot() {
    local firmware=slof memory=2G cpu="" smp=1 append="" trace="" gdb=0 timeout=120 kvm=0
    local extra=()
    while [ $# -gt 0 ]; do
        case "$1" in
            --firmware) firmware="$2"; shift 2 ;;
            --memory) memory="$2"; shift 2 ;;
            --cpu) cpu="$2"; shift 2 ;;
            --smp) smp="$2"; shift 2 ;;
            --append) append="$2"; shift 2 ;;
            --trace) trace="$2"; shift 2 ;;
            --gdb) gdb=1; shift ;;
            --timeout) timeout="$2"; shift 2 ;;
            --kvm) kvm=1; shift ;;
            --) shift; extra=("$@"); break ;;
            *) die "unknown option '$1' (see the header of run.sh)" ;;
        esac
    done
    local disk; disk="$(make_disk)"
    if [ "$kvm" -eq 1 ]; then
        [ "$firmware" = slof ] && [ -z "$cpu" ] && [ "$smp" -eq 1 ] && [ -z "$trace" ] && [ "$gdb" -eq 0 ] \
            && [ ${#extra[@]} -eq 0 ] || die "--kvm takes only --append, --memory and --timeout"
        [ "$timeout" -ge 240 ] || timeout=300
        say "booting in the KVM lane (L0 TCG with nested HV -> L1 Linux with kvm_hv -> L2 under -accel kvm)"
        cd "$ROOT"
        PSERIES_KERNEL_ELF="$KERNEL_ELF" PSERIES_KERNEL_BIOS="$KERNEL_BIN" cargo run --quiet --release -p tests \
            --bin kvm_boot -- --disk "$disk" --append "$append" --memory "$memory" --timeout "$timeout"
        return
    fi
    local machine="pseries,$MACHINE_CAPS"
    local args=(-nodefaults -nographic -serial mon:stdio -no-reboot -action panic=exit-failure
        -m "$memory" -smp "$smp"
        -drive "if=none,id=disk0,file=$disk,format=raw"
        -device "virtio-blk-pci,drive=disk0,disable-legacy=on,iommu_platform=on"
        -device edu)
    case "$firmware" in
        slof) args+=(-kernel "$KERNEL_ELF") ;;
        vof) machine="$machine,x-vof=on"; args+=(-kernel "$KERNEL_ELF") ;;
        bios) args+=(-bios "$KERNEL_BIN")
              [ -z "$append" ] || die "--append needs -kernel (QEMU refuses -append with -bios)" ;;
        *) die "unknown firmware '$firmware' (slof, vof or bios)" ;;
    esac
    args=(-M "$machine" "${args[@]}")
    [ -z "$cpu" ] || args+=(-cpu "$cpu")
    [ -z "$append" ] || args+=(-append "$append")
    [ -z "$trace" ] || args+=(-trace 'spapr_iommu_*' -trace 'pci_cfg_*' -trace 'pci_update_mappings_*' -D "$trace")
    [ "$gdb" -eq 0 ] || { args+=(-s -S); timeout=0; say "gdb: target remote :1234 (QEMU waits)"; }
    say "booting: qemu-system-ppc64 ${args[*]} ${extra[*]}"
    local log="$OUT/console.log" status=0
    if [ "$timeout" -gt 0 ]; then
        timeout --foreground "$timeout" qemu-system-ppc64 "${args[@]}" "${extra[@]}" 2>&1 | tee "$log" || status=${PIPESTATUS[0]}
    else
        qemu-system-ppc64 "${args[@]}" "${extra[@]}" 2>&1 | tee "$log" || status=${PIPESTATUS[0]}
    fi
    echo
    case "$status" in
        0) say "QEMU exited 0: the kernel powered off cleanly (console saved in $log)" ;;
        124) say "the guest hung: killed after ${timeout}s. Last console lines:"; tail -n 20 "$log" >&2; exit 124 ;;
        *) say "QEMU exited $status: the kernel reported a failure (see 'error:' above; console in $log)"; exit "$status" ;;
    esac
}

# --- commands -----------------------------------------------------------------------------

cmd="${1:-run}"
case "$cmd" in
    build)
        setup; build
        echo "kernel ELF (for -kernel, SLOF and VOF): $KERNEL_ELF"
        echo "raw image (for -bios, FDT-direct):      $KERNEL_BIN"
        ;;
    test)
        shift
        setup; build
        say "running host unit tests and QEMU boot tests"
        cd "$ROOT"
        export PSERIES_KERNEL_ELF="$KERNEL_ELF" PSERIES_KERNEL_BIOS="$KERNEL_BIN"
        mkdir -p "$OUT"
        local_log="$OUT/test.log" status=0
        cargo test --release --workspace --exclude kernel --exclude arch-ppc64 --exclude memfns "$@" 2>&1 \
            | tee "$local_log" || status=${PIPESTATUS[0]}
        # One closing line over every test binary (host unit tests and QEMU boots).
        awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed/) p += $(i-1); if ($i ~ /^failed/) f += $(i-1) } }
             END { printf "%d passed, %d failed\n", p, f }' "$local_log"
        exit "$status"
        ;;
    bench)
        shift
        # ./run.sh bench [boot|ddw] [--runs N] [--quick]: both benchmarks unless one is named;
        # --runs goes to both, --quick only to bench_ddw.
        which=all boot_args=() ddw_args=()
        while [ $# -gt 0 ]; do
            case "$1" in
                boot|ddw) which="$1"; shift ;;
                --runs) [ $# -ge 2 ] || die "--runs needs a number"
                        boot_args+=(--runs "$2"); ddw_args+=(--runs "$2"); shift 2 ;;
                --quick) ddw_args+=(--quick); shift ;;
                *) die "unknown bench option '$1' (boot|ddw, --runs N, --quick)" ;;
            esac
        done
        setup; build
        cd "$ROOT"
        export PSERIES_KERNEL_ELF="$KERNEL_ELF" PSERIES_KERNEL_BIOS="$KERNEL_BIN"
        if [ "$which" != ddw ]; then
            cargo run --quiet --release -p tests --bin bench_boot -- "${boot_args[@]}"
        fi
        if [ "$which" != boot ]; then
            [ "$which" = ddw ] || echo
            cargo run --quiet --release -p tests --bin bench_ddw -- "${ddw_args[@]}"
        fi
        ;;
    run) shift || true; setup; build; boot "$@" ;;
    -*) setup; build; boot "$@" ;;
    fuzz)
        shift
        cases="${1:-1000000}"
        case "$cases" in ''|*[!0-9]*) die "fuzz takes a number of executions, not '$cases'" ;; esac
        setup
        cd "$ROOT"
        mkdir -p "$OUT"
        # A fresh seed each run explores new cases; FUZZ_SEED=N repeats a run.
        seed="${FUZZ_SEED:-$(od -An -N8 -tu8 /dev/urandom | tr -d ' ')}"
        say "fuzzing with $cases executions per target, FUZZ_SEED=$seed (rerun with FUZZ_SEED=$seed ./run.sh fuzz $cases)"
        export FUZZ_CASES="$cases" FUZZ_SEED="$seed"
        status=0
        for target in "drivers fuzz_devtree" "papr-model fuzz_ddw"; do
            set -- $target
            cargo test --release -p "$1" --test "$2" -- --nocapture > "$OUT/fuzz-$2.log" 2>&1 || status=1
            grep -E 'executions|test result|panicked|minimal failing input|Test failed' "$OUT/fuzz-$2.log" || true
        done
        if [ "$status" -ne 0 ]; then
            say "a fuzz target failed (FUZZ_SEED=$seed; logs in $OUT/fuzz-*.log); its case was appended to"
            say "drivers/tests/regressions/ or papr-model/tests/regressions/, which ./run.sh test replays"
        fi
        exit "$status"
        ;;
    help|-h|--help) sed -n '2,28p' "$0" ;;
    *) die "unknown command '$cmd' (build, test, bench, fuzz, or boot options; see ./run.sh help)" ;;
esac
