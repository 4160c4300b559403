#!/usr/bin/env bash
# tests/kvm/setup.sh [kvm|vfio] — fetch and cache what a nested test lane boots as L1 (see the
# project's docs/ARCHITECTURE.md "KVM-HV lane" and "VFIO lane"): Debian's ppc64el Linux kernel
# with the lane's modules, busybox, and the ppc64el qemu-system-ppc64 with its firmware and
# shared-library closure. Idempotent: a finished cache is left alone, nothing is downloaded
# twice (apt keeps the .debs in the cache). apt runs with private state and lists, so the host's
# package database and architectures are not touched.
#
#   kvm   (default) bookworm's kernel; modules kvm, kvm-hv. Cache: $PSERIES_KVM_CACHE or
#         ~/.cache/pseries-ddw/kvm-lane.
#   vfio  bookworm-backports' newest linux-image-*-powerpc64le-64k (6.12: the pSeries VFIO
#         series of Linux 6.11, 64 KiB pages so that L2's 64 KiB guest pages can be backed);
#         modules kvm, kvm-hv, vfio, vfio_iommu_spapr_tce, vfio-pci-core, vfio-pci and what
#         they depend on. The backports suite is added in a private sources list with the
#         URIs and keyring of the host's bookworm entry. Cache: $PSERIES_VFIO_CACHE or
#         ~/.cache/pseries-ddw/vfio-lane.
#
# Prints the cache directory on success. Layout:
#   vmlinux              the L1 kernel
#   l1root/              the L1 initramfs tree (/bin/busybox, /lib/modules/*.ko,
#                        /usr/bin/qemu-system-ppc64, /usr/share/qemu, libraries)
#   l1root/lib/modules/order   the modules in load order (dependencies first), one a line
#   l1root/.complete     written last
set -euo pipefail

LANE="${1:-kvm}"
case "$LANE" in
    kvm) cache_var=PSERIES_KVM_CACHE; wanted=(kvm kvm-hv) ;;
    vfio) cache_var=PSERIES_VFIO_CACHE; wanted=(kvm kvm-hv vfio vfio_iommu_spapr_tce vfio-pci-core vfio-pci) ;;
    *) echo "usage: $0 [kvm|vfio]" >&2; exit 2 ;;
esac
CACHE="${!cache_var:-${XDG_CACHE_HOME:-${HOME:-/nonexistent}/.cache}/pseries-ddw/$LANE-lane}"
# No writable home: keep the cache in the workspace's target directory instead.
if ! mkdir -p "$CACHE" 2>/dev/null; then
    CACHE="$(cd "$(dirname "$0")/../.." && pwd)/target/$LANE-lane-cache"
fi
ROOT="$CACHE/l1root"
complete() { [ -f "$ROOT/.complete" ] && [ -f "$ROOT/lib/modules/order" ] && [ -f "$CACHE/vmlinux" ]; }
if complete; then
    echo "$CACHE"
    exit 0
fi

die() { echo "$LANE-lane setup: $*" >&2; exit 1; }
mkdir -p "$CACHE"
# One set-up at a time (tests and ./run.sh --kvm/--vfio may start together).
exec 9>"$CACHE/.lock"
command -v flock >/dev/null && flock 9
if complete; then
    echo "$CACHE"
    exit 0
fi
for tool in apt-get apt-cache dpkg-deb readelf xz; do
    command -v "$tool" >/dev/null || die "needs $tool (Debian/Ubuntu host)"
done

mkdir -p "$CACHE/apt/lists/partial" "$CACHE/apt/archives/partial" "$CACHE/apt/cache"
: > "$CACHE/apt/status"
apt_opts=(-q -o APT::Architecture=ppc64el -o APT::Architectures::=ppc64el
    -o "Dir::State::Lists=$CACHE/apt/lists" -o "Dir::State::status=$CACHE/apt/status"
    -o "Dir::Cache=$CACHE/apt/cache" -o "Dir::Cache::archives=$CACHE/apt/archives"
    -o Debug::NoLocking=1)

# The host's bookworm entry as "URI KEYRING" (deb822 .sources or one-line .list; the keyring is
# empty when the entry names none: apt's trusted keys then apply).
bookworm_entry() {
    local file
    for file in /etc/apt/sources.list.d/*.sources; do
        [ -f "$file" ] || continue
        awk '
            function flush() { if (deb && bookworm && uri != "") { print uri, key; found = 1; exit } deb = bookworm = 0; uri = key = "" }
            /^[ \t]*$/ { flush(); next }
            /^Types:/ { for (i = 2; i <= NF; i++) if ($i == "deb") deb = 1 }
            /^URIs:/ { uri = $2 }
            /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == "bookworm") bookworm = 1 }
            /^Signed-By:/ { key = $2 }
            END { if (!found) flush() }' "$file" | head -1 | grep . && return 0
    done
    for file in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$file" ] || continue
        sed -n -E 's/^deb[ \t]+(\[([^]]*)\][ \t]+)?([^ \t]+)[ \t]+bookworm[ \t].*/\3 \2/p' "$file" \
            | sed -E 's/ .*signed-by=([^ ]+).*/ \1/; t; s/ .*/ /' | head -1 | grep . && return 0
    done
    return 1
}

if [ "$LANE" = vfio ]; then
    read -r uri keyring < <(bookworm_entry) || die "no bookworm entry in /etc/apt/sources.list(.d): cannot add bookworm-backports"
    options=""
    [ -z "$keyring" ] || options="[signed-by=$keyring] "
    mkdir -p "$CACHE/apt/sources.list.d"
    printf 'deb %s%s %s main\n' "$options" "$uri" bookworm "$options" "$uri" bookworm-backports \
        > "$CACHE/apt/sources.list"
    apt_opts+=(-o "Dir::Etc::sourcelist=$CACHE/apt/sources.list" -o "Dir::Etc::sourceparts=$CACHE/apt/sources.list.d")
fi
if ! ls "$CACHE/apt/lists/"*ppc64el_Packages* >/dev/null 2>&1; then
    # The security index for ppc64el may fail ("File has unexpected size"); main is enough.
    apt-get "${apt_opts[@]}" update >&2 || true
    ls "$CACHE/apt/lists/"*ppc64el_Packages* >/dev/null 2>&1 || die "apt-get update found no ppc64el index"
fi
# coreutils: the I/O benchmark's GNU dd for Linux (busybox's dd does not read with O_DIRECT).
packages=(busybox-static qemu-system-ppc coreutils)
if [ "$LANE" = kvm ]; then
    packages+=(linux-image-powerpc64le)
else
    # Backports' versions move: the 64k flavour's meta package names the current image.
    image=$(apt-cache "${apt_opts[@]}" depends linux-image-powerpc64le-64k 2>/dev/null \
        | sed -n 's/^ *Depends: \(linux-image-[0-9].*-powerpc64le-64k\)$/\1/p' | sort -V | tail -1)
    [ -n "$image" ] || die "bookworm-backports has no linux-image-*-powerpc64le-64k for ppc64el"
    # The image alone (its dependencies are for an installed system, not for an initramfs).
    (cd "$CACHE/apt/archives" && apt-get "${apt_opts[@]}" download "$image:ppc64el" >&2) \
        || die "downloading $image (ppc64el) failed"
fi
apt-get "${apt_opts[@]}" --download-only --no-install-recommends -y install "${packages[@]}" >&2 \
    || die "downloading ${packages[*]} (ppc64el) failed"

stage="$CACHE/extract"
rm -rf "$stage" "$ROOT"
mkdir -p "$stage" "$ROOT"
for deb in "$CACHE/apt/archives/"*.deb; do
    dpkg-deb -x "$deb" "$stage"
done

flavour=powerpc64le
[ "$LANE" = kvm ] || flavour=powerpc64le-64k
vmlinux=$(ls "$stage"/boot/vmlinux-*-"$flavour" 2>/dev/null | sort -V | tail -1)
[ -n "$vmlinux" ] || die "no vmlinux-*-$flavour in the linux-image package"
version=${vmlinux##*/vmlinux-}
mkdir -p "$ROOT/bin" "$ROOT/lib/modules" "$ROOT/usr/bin" "$ROOT/usr/share/qemu" "$ROOT/lib64"
cp "$stage/bin/busybox" "$ROOT/bin/busybox"

# The wanted modules and, before each, what its .modinfo `depends=` names (the package has no
# modules.dep): uncompressed, as busybox insmod loads them, under their file names (kvm-hv.ko),
# listed in load order.
moddir="$stage/lib/modules/$version/kernel"
declare -A loaded=()
add_module() {
    local name=${1//-/_} file base dep
    [ -z "${loaded[$name]:-}" ] || return 0
    loaded[$name]=1
    file=$(find "$moddir" \( -name "$name.ko" -o -name "$name.ko.xz" -o -name "${name//_/-}.ko" \
        -o -name "${name//_/-}.ko.xz" \) | head -1)
    [ -n "$file" ] || die "no module $name for $version"
    base=$(basename "$file" .xz)
    case "$file" in
        *.xz) xz -dc "$file" > "$ROOT/lib/modules/$base" ;;
        *) cp "$file" "$ROOT/lib/modules/$base" ;;
    esac
    for dep in $(readelf -p .modinfo "$ROOT/lib/modules/$base" | sed -n 's/.*depends=//p' | tr ',' ' '); do
        add_module "$dep"
    done
    echo "${base%.ko}" >> "$ROOT/lib/modules/order"
}
: > "$ROOT/lib/modules/order"
for mod in "${wanted[@]}"; do
    add_module "$mod"
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
