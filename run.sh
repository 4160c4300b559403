#!/usr/bin/env bash
# run.sh — set up, build and boot the pseries DDW unikernel under QEMU, or run its tests.
# The commands and options are in usage() below (`./run.sh help`). Arguments are checked
# before anything is installed or built.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TARGET=powerpc64le-unknown-linux-gnu
# PSERIES_OUT moves the boot's files (console, report, map, disk) elsewhere than out/.
OUT="${PSERIES_OUT:-$ROOT/out}"
KERNEL_ELF="$ROOT/target/$TARGET/release/kernel"
KERNEL_BIN="$ROOT/target/$TARGET/release/kernel.bin"
# cap-hpt-max-page-size=16M: 16 MiB hash pages for the kernel's identity map on POWER8 (hash MMU).
MACHINE_CAPS="cap-cfpc=broken,cap-sbbc=broken,cap-ibs=broken,cap-ccf-assist=off,cap-hpt-max-page-size=16M"

usage() {
    cat <<'EOF'
Usage:
  ./run.sh [options] [-- extra QEMU args]   set up, build, boot the default scenario and print
                                            a summary of the kernel's report
  ./run.sh test [cargo test args]           set up, build, run every test (host unit tests,
                                            QEMU boots, the KVM-HV and VFIO lanes)
  ./run.sh build                            set up, build; print the kernel ELF and -bios image
  ./run.sh bench [boot|ddw] [--runs N] [--quick]
                                            boot times, DDW set-up cost and read rates
                                            (benchmarks, not tests)
  ./run.sh bench io [--runs N] [--quick]    sequential I/O on virtio-blk and NVMe, direct
                                            DDW and ddw=off, against Debian's Linux (fetched
                                            once, as for the KVM-HV lane)
  ./run.sh fuzz [N]                         fuzz the device-tree parsers and the DDW logic, N
                                            executions per target (default 1000000)
  ./run.sh help                             this text (also -h, --help)

Options for a boot:
  --firmware slof|vof|bios   firmware path (default slof, QEMU's default firmware; bios: the
                             raw image as -bios, FDT handed over directly)
  --memory SIZE              guest RAM, as QEMU's -m (default 2G)
  --cpu MODEL                QEMU CPU model (default QEMU's: POWER9 on 7.2 pseries)
  --smp N                    CPUs (default 1)
  --append "ARGS"            kernel command line, e.g. "ddw=off" (not with --firmware bios)
  --trace FILE               write QEMU's spapr_iommu_*, pci_cfg_* and BAR-mapping trace to FILE
  --gdb                      start QEMU stopped with a gdb server on :1234 and print the gdb
                             command to attach with
  --timeout SECONDS          kill a hung guest after this long (default 120; 0: never)
  --kv                       print the whole console as it comes, every key=value line
                             included, instead of the summary
  --kernel ELF               boot this kernel ELF instead of building one (the cargo runner
                             for the kernel's target passes it)
  --kvm                      boot as L2 under real KVM-HV nested under TCG (VOF; takes only
                             --append, --memory and --timeout; fetches Debian's ppc64el
                             kernel and QEMU once)
  --vfio                     the same, with the disk and edu on L0's PHB passed through by L1
                             Linux 6.12 with VFIO (fetched once from bookworm-backports); the
                             disk is copied first, and L0's trace of L2's DMA windows is shown

A boot shows the console's readable lines, then the summary: per PE a map of its bus-address
space (windows, page sizes, LIOBNs, devices and modes), RAM mapped, hot-plug headroom, the
DDW's cost, the self-test per device, the boot timeline and every failure in words. It leaves
in out/: console.log, report.kv (every key=value line: the machine interface), summary.txt,
dma-map.svg (the map, for sharing) and disk.img. QEMU's exit status is the result.

Environment: PSERIES_TEST_CPU=POWER8|POWER10 runs the test matrix on that CPU;
PSERIES_KVM_LANE=off skips the KVM-HV lane, PSERIES_VFIO_LANE=off the VFIO lane (their tests
are then reported ignored); FUZZ_SEED=S repeats a fuzz run; NO_COLOR=1
turns the summary's colour off; PSERIES_OUT=DIR writes a boot's files to DIR instead of out/.
EOF
}

say() { printf 'run.sh: %s\n' "$*" >&2; }
die() { printf 'run.sh: error: %s\n' "$*" >&2; exit 1; }
# An argument error: said before anything is installed or built, exit status 2.
usage_error() { printf 'run.sh: error: %s\n(./run.sh help prints the usage)\n' "$*" >&2; exit 2; }

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
    (cd "$ROOT" && cargo build --quiet --release -p tests --bin mkimage --bin report) \
        || die "building the host tools (mkimage, report) failed"
    (cd "$ROOT" && cargo run --quiet --release -p tests --bin mkimage -- "$KERNEL_ELF" "$KERNEL_BIN") \
        || die "building the -bios image failed"
}

# The summary renderer (tests/src/bin/report.rs); PSERIES_REPORT_BIN names a prebuilt one.
report() {
    if [ -n "${PSERIES_REPORT_BIN:-}" ]; then
        "$PSERIES_REPORT_BIN" "$@"
    else
        (cd "$ROOT" && cargo run --quiet --release -p tests --bin report -- "$@")
    fi
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

# Boot options, set by parse_boot_options.
firmware=slof memory=2G cpu="" smp=1 append="" trace="" gdb=0 timeout=120 kvm=0 kv=0 elf=""
# --kvm or --vfio: the nested lane (kvm=1), and which.
nesting=kvm
extra=()

# Reads and checks every boot option; any error is reported before set-up or build.
parse_boot_options() {
    local given=()
    while [ $# -gt 0 ]; do
        case "$1" in
            --firmware|--memory|--cpu|--smp|--append|--trace|--timeout|--kernel)
                [ $# -ge 2 ] || usage_error "$1 needs a value"
                given+=("$1")
                case "$1" in
                    --firmware) firmware="$2" ;;
                    --memory) memory="$2" ;;
                    --cpu) cpu="$2" ;;
                    --smp) smp="$2" ;;
                    --append) append="$2" ;;
                    --trace) trace="$2" ;;
                    --timeout) timeout="$2" ;;
                    --kernel) elf="$2" ;;
                esac
                shift 2 ;;
            --gdb) gdb=1; given+=("$1"); shift ;;
            --kvm|--vfio) kvm=1; nesting="${1#--}"; shift ;;
            --kv) kv=1; shift ;;
            -h|--help) usage; exit 0 ;;
            --) shift; extra=("$@"); break ;;
            *) usage_error "unknown option '$1'" ;;
        esac
    done
    case "$firmware" in
        slof|vof|bios) ;;
        *) usage_error "unknown firmware '$firmware' (slof, vof or bios)" ;;
    esac
    [[ "$memory" =~ ^[0-9]+(\.[0-9]+)?[KMGTkmgt]?(,.+)?$ ]] \
        || usage_error "--memory takes a size such as 2G or 4096M (QEMU's -m), not '$memory'"
    [[ "$smp" =~ ^[1-9][0-9]*(,.+)?$ ]] || usage_error "--smp takes a number of CPUs, not '$smp'"
    [[ "$timeout" =~ ^[0-9]+$ ]] || usage_error "--timeout takes whole seconds, not '$timeout'"
    if [ "$firmware" = bios ] && [ -n "$append" ]; then
        usage_error "--append needs -kernel (slof or vof): QEMU refuses -append with -bios"
    fi
    if [ -n "$elf" ]; then
        [ -f "$elf" ] || usage_error "--kernel $elf: no such file"
        elf="$(cd "$(dirname "$elf")" && pwd)/$(basename "$elf")"
    fi
    if [ "$kvm" -eq 1 ]; then
        local option
        for option in "${given[@]}"; do
            case "$option" in
                --append|--memory|--timeout) ;;
                *) usage_error "--$nesting takes only --append, --memory and --timeout, not $option" ;;
            esac
        done
        [ ${#extra[@]} -eq 0 ] || usage_error "--$nesting takes no extra QEMU arguments"
        [ "$kv" -eq 0 ] || usage_error "--$nesting prints the L2 console as it is; --kv does not apply"
    fi
    return 0
}

# Shows the console's readable lines and leaves out the key=value report lines (the same
# shape as tests/src/kv.rs): the summary renders those after the boot.
human_lines() {
    grep --line-buffered -v -E '^[a-z][a-z0-9_.:,-]*=' || true
}

# Writes out/report.kv, out/summary.txt and out/dma-map.svg from the console, and prints the
# summary (unless --kv printed the console whole).
summarise() {
    local log="$1"
    local files=(--kv-out "$OUT/report.kv" --svg "$OUT/dma-map.svg" --summary-out "$OUT/summary.txt" "$log")
    if [ "$kv" -eq 1 ]; then
        report "${files[@]}" >/dev/null || { say "the report could not be rendered (see above)"; return 0; }
        say "summary in $OUT/summary.txt; report lines in $OUT/report.kv; map in $OUT/dma-map.svg"
    else
        echo
        report "${files[@]}" || { say "the summary could not be rendered (see above)"; return 0; }
        say "every key=value line: $OUT/report.kv (./run.sh --kv prints the console whole); map: $OUT/dma-map.svg"
    fi
}

boot() {
    local kernel="${elf:-$KERNEL_ELF}" bios="$KERNEL_BIN"
    local disk; disk="$(make_disk)"
    if [ "$kvm" -eq 1 ]; then
        [ "$timeout" -ge 240 ] || timeout=300
        if [ "$nesting" = vfio ]; then
            say "booting in the VFIO lane (L0 TCG with nested HV and the disk and edu on its PHB -> L1 Linux 6.12 binding them to vfio-pci -> L2 under -accel kvm with -device vfio-pci)"
        else
            say "booting in the KVM lane (L0 TCG with nested HV -> L1 Linux with kvm_hv -> L2 under -accel kvm)"
        fi
        cd "$ROOT"
        PSERIES_KERNEL_ELF="$kernel" PSERIES_KERNEL_BIOS="$bios" cargo run --quiet --release -p tests \
            --bin kvm_boot -- "--$nesting" --disk "$disk" --append "$append" --memory "$memory" --timeout "$timeout"
        return
    fi
    if [ -n "$elf" ] && [ "$firmware" = bios ]; then
        bios="$OUT/kernel.bin"
        (cd "$ROOT" && cargo run --quiet --release -p tests --bin mkimage -- "$kernel" "$bios") \
            || die "building the -bios image from $kernel failed"
    fi
    local machine="pseries,$MACHINE_CAPS"
    local args=(-nodefaults -nographic -serial mon:stdio -no-reboot -action panic=exit-failure
        -m "$memory" -smp "$smp"
        -drive "if=none,id=disk0,file=$disk,format=raw"
        -device "virtio-blk-pci,drive=disk0,disable-legacy=on,iommu_platform=on"
        -device edu)
    case "$firmware" in
        slof) args+=(-kernel "$kernel") ;;
        vof) machine="$machine,x-vof=on"; args+=(-kernel "$kernel") ;;
        bios) args+=(-bios "$bios") ;;
    esac
    args=(-M "$machine" "${args[@]}")
    [ -z "$cpu" ] || args+=(-cpu "$cpu")
    [ -z "$append" ] || args+=(-append "$append")
    [ -z "$trace" ] || args+=(-trace 'spapr_iommu_*' -trace 'pci_cfg_*' -trace 'pci_update_mappings_*' -D "$trace")
    if [ "$gdb" -eq 1 ]; then
        args+=(-s -S)
        timeout=0
        command -v gdb-multiarch >/dev/null 2>&1 \
            || say "gdb-multiarch is not installed (apt-get install gdb-multiarch); a gdb for ppc64le works too"
        say "QEMU waits for gdb on :1234; in another terminal:"
        say "  gdb-multiarch -ex 'target remote :1234' $kernel"
    fi
    say "booting: qemu-system-ppc64 ${args[*]} ${extra[*]}"
    local log="$OUT/console.log" status=0
    local show=human_lines
    [ "$kv" -eq 0 ] || show=cat
    if [ "$timeout" -gt 0 ]; then
        timeout --foreground "$timeout" qemu-system-ppc64 "${args[@]}" "${extra[@]}" 2>&1 | tee "$log" | "$show" \
            || status=${PIPESTATUS[0]}
    else
        qemu-system-ppc64 "${args[@]}" "${extra[@]}" 2>&1 | tee "$log" | "$show" || status=${PIPESTATUS[0]}
    fi
    summarise "$log"
    case "$status" in
        0) say "QEMU exited 0: the kernel powered off cleanly (console saved in $log)" ;;
        124) say "the guest hung: killed after ${timeout}s. Last console lines:"; tail -n 20 "$log" >&2; exit 124 ;;
        *) say "QEMU exited $status: the kernel reported a failure (see the failures above; console in $log)"; exit "$status" ;;
    esac
}

# --- commands -----------------------------------------------------------------------------

cmd="${1:-run}"
case "$cmd" in
    build)
        shift
        [ $# -eq 0 ] || usage_error "build takes no arguments, not '$*'"
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
        # One closing line over every test binary (host unit tests and QEMU boots); ignored
        # tests (a switched-off lane's, a case that cannot run yet) are counted as skipped.
        awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed/) p += $(i-1); if ($i ~ /^failed/) f += $(i-1); if ($i ~ /^ignored/) s += $(i-1) } }
             END { printf "%d passed, %d failed, %d skipped\n", p, f, s }' "$local_log"
        exit "$status"
        ;;
    bench)
        shift
        # ./run.sh bench [boot|ddw] [--runs N] [--quick]: both benchmarks unless one is named;
        # --runs goes to both, --quick only to bench_ddw. ./run.sh bench io: only bench_io
        # (which fetches Linux), with --runs and --quick.
        which=all boot_args=() ddw_args=() io_args=()
        while [ $# -gt 0 ]; do
            case "$1" in
                boot|ddw|io) which="$1"; shift ;;
                --runs) [ $# -ge 2 ] || usage_error "--runs needs a number"
                        [[ "$2" =~ ^[1-9][0-9]*$ ]] || usage_error "--runs takes a positive number, not '$2'"
                        boot_args+=(--runs "$2"); ddw_args+=(--runs "$2"); io_args+=(--runs "$2"); shift 2 ;;
                --quick) ddw_args+=(--quick); io_args+=(--quick); shift ;;
                *) usage_error "unknown bench option '$1' (boot|ddw|io, --runs N, --quick)" ;;
            esac
        done
        setup; build
        cd "$ROOT"
        export PSERIES_KERNEL_ELF="$KERNEL_ELF" PSERIES_KERNEL_BIOS="$KERNEL_BIN"
        if [ "$which" = io ]; then
            cargo run --quiet --release -p tests --bin bench_io -- "${io_args[@]}"
            exit
        fi
        if [ "$which" != ddw ]; then
            cargo run --quiet --release -p tests --bin bench_boot -- "${boot_args[@]}"
        fi
        if [ "$which" != boot ]; then
            [ "$which" = ddw ] || echo
            cargo run --quiet --release -p tests --bin bench_ddw -- "${ddw_args[@]}"
        fi
        ;;
    run|-*)
        if [ "$cmd" = run ] && [ $# -gt 0 ]; then shift; fi
        parse_boot_options "$@"
        setup
        if [ -n "$elf" ]; then
            say "booting $elf (--kernel: no kernel build)"
            # The summary's renderer, built before the boot so a build error shows first.
            [ -n "${PSERIES_REPORT_BIN:-}" ] || (cd "$ROOT" && cargo build --quiet --release -p tests --bin report) \
                || die "building the summary's renderer (report) failed"
        else
            build
        fi
        boot
        ;;
    fuzz)
        shift
        [ $# -le 1 ] || usage_error "fuzz takes one number of executions, not '$*'"
        cases="${1:-1000000}"
        case "$cases" in ''|*[!0-9]*) usage_error "fuzz takes a number of executions, not '$cases'" ;; esac
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
    help|-h|--help) usage ;;
    *) usage_error "unknown command '$cmd' (build, test, bench, fuzz, help, or boot options)" ;;
esac
