#!/usr/bin/env bash
# tests/kvm/setup.sh — fetch and cache what the KVM-HV test lane boots as L1 (see
# the project's docs/ARCHITECTURE.md "KVM-HV lane"): Debian's ppc64el Linux kernel (with kvm.ko and
# kvm-hv.ko), busybox, and the ppc64el qemu-system-ppc64 with its firmware and shared-library
# closure. Idempotent: a finished cache is left alone, nothing is downloaded twice (apt keeps
# the .debs in the cache). apt runs with private state and lists, so the host's package
# database and architectures are not touched.
#
# Prints the cache directory on success. Layout:
#   vmlinux          the L1 kernel
#   l1root/          the L1 initramfs tree (/bin/busybox, /lib/modules/kvm*.ko,
#                    /usr/bin/qemu-system-ppc64, /usr/share/qemu, libraries)
#   l1root/.complete written last
set -euo pipefail

CACHE="${PSERIES_KVM_CACHE:-${XDG_CACHE_HOME:-${HOME:-/nonexistent}/.cache}/pseries-ddw/kvm-lane}"
# No writable home: keep the cache in the workspace's target directory instead.
if ! mkdir -p "$CACHE" 2>/dev/null; then
    CACHE="$(cd "$(dirname "$0")/../.." && pwd)/target/kvm-lane-cache"
fi
ROOT="$CACHE/l1root"
if [ -f "$ROOT/.complete" ] && [ -f "$CACHE/vmlinux" ]; then
    echo "$CACHE"
    exit 0
fi

die() { echo "kvm-lane setup: $*" >&2; exit 1; }
mkdir -p "$CACHE"
# One set-up at a time (tests and ./run.sh --kvm may start together).
exec 9>"$CACHE/.lock"
command -v flock >/dev/null && flock 9
if [ -f "$ROOT/.complete" ] && [ -f "$CACHE/vmlinux" ]; then
    echo "$CACHE"
    exit 0
fi
for tool in apt-get dpkg-deb readelf; do
    command -v "$tool" >/dev/null || die "needs $tool (Debian/Ubuntu host)"
done

mkdir -p "$CACHE/apt/lists/partial" "$CACHE/apt/archives/partial" "$CACHE/apt/cache"
: > "$CACHE/apt/status"
apt_opts=(-q -o APT::Architecture=ppc64el -o APT::Architectures::=ppc64el
    -o "Dir::State::Lists=$CACHE/apt/lists" -o "Dir::State::status=$CACHE/apt/status"
    -o "Dir::Cache=$CACHE/apt/cache" -o "Dir::Cache::archives=$CACHE/apt/archives"
    -o Debug::NoLocking=1)
packages=(linux-image-powerpc64le busybox-static qemu-system-ppc)
if ! ls "$CACHE/apt/lists/"*ppc64el_Packages* >/dev/null 2>&1; then
    # The security index for ppc64el may fail ("File has unexpected size"); main is enough.
    apt-get "${apt_opts[@]}" update >&2 || true
    ls "$CACHE/apt/lists/"*ppc64el_Packages* >/dev/null 2>&1 || die "apt-get update found no ppc64el index"
fi
apt-get "${apt_opts[@]}" --download-only --no-install-recommends -y install "${packages[@]}" >&2 \
    || die "downloading ${packages[*]} (ppc64el) failed"

stage="$CACHE/extract"
rm -rf "$stage" "$ROOT"
mkdir -p "$stage" "$ROOT"
for deb in "$CACHE/apt/archives/"*.deb; do
    dpkg-deb -x "$deb" "$stage"
done

vmlinux=$(ls "$stage"/boot/vmlinux-*-powerpc64le 2>/dev/null | sort -V | tail -1)
[ -n "$vmlinux" ] || die "no vmlinux in the linux-image package"
version=${vmlinux##*/vmlinux-}
mkdir -p "$ROOT/bin" "$ROOT/lib/modules" "$ROOT/usr/bin" "$ROOT/usr/share/qemu" "$ROOT/lib64"
cp "$stage/bin/busybox" "$ROOT/bin/busybox"
for mod in kvm kvm-hv; do
    cp "$stage/lib/modules/$version/kernel/arch/powerpc/kvm/$mod.ko" "$ROOT/lib/modules/$mod.ko" \
        || die "no $mod.ko for $version"
done
cp "$stage/usr/bin/qemu-system-ppc64" "$ROOT/usr/bin/"
cp "$stage/usr/share/qemu/vof.bin" "$stage/usr/share/qemu/slof.bin" "$ROOT/usr/share/qemu/"

# The dynamic loader and the recursive DT_NEEDED closure of qemu-system-ppc64.
libdirs=(lib/powerpc64le-linux-gnu usr/lib/powerpc64le-linux-gnu)
cp -L "$stage/lib/powerpc64le-linux-gnu/ld64.so.2" "$ROOT/lib64/ld64.so.2"
queue=("$ROOT/usr/bin/qemu-system-ppc64")
declare -A seen=()
while [ ${#queue[@]} -gt 0 ]; do
    elf=${queue[0]}
    queue=("${queue[@]:1}")
    for lib in $(readelf -d "$elf" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p'); do
        [ -z "${seen[$lib]:-}" ] || continue
        seen[$lib]=1
        found=
        for dir in "${libdirs[@]}"; do
            if [ -e "$stage/$dir/$lib" ]; then
                mkdir -p "$ROOT/$dir"
                cp -L "$stage/$dir/$lib" "$ROOT/$dir/$lib"
                queue+=("$ROOT/$dir/$lib")
                found=1
                break
            fi
        done
        [ -n "$found" ] || [ "$lib" = ld64.so.2 ] || die "library $lib of ${elf##*/} not found in the packages"
    done
done
cp "$vmlinux" "$CACHE/vmlinux"
echo "$version" > "$CACHE/kernel-version"
rm -rf "$stage"
echo "libraries: ${#seen[@]}" > "$ROOT/.complete"
echo "$CACHE"
