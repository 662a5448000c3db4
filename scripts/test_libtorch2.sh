#!/usr/bin/env bash
# The whole suite against LibTorch 2.x, on this machine: Debian 13 (trixie) ships libtorch-dev 2.6.
#
# Makes a trixie root with debootstrap (or reuses it), installs msmedcap's dependencies there with
# scripts/install_deps.sh (the same package names exist in Debian 13), copies the working tree
# into it (tracked files and untracked ones git does not ignore; files deleted here are deleted
# there) and runs scripts/test.sh inside it with chroot. A second run reuses the root and the
# build folder in it: copied files keep their times, so only what changed is rebuilt.
#
# Usage: scripts/test_libtorch2.sh [CTEST ARGS...]     (as root: debootstrap, mount, chroot)
# Environment:
#   LIBTORCH2_ROOT    the trixie root (default /var/cache/msmedcap/trixie; outside the tree)
#   LIBTORCH2_MIRROR  Debian mirror for debootstrap (default http://deb.debian.org/debian)
#   TEST_VMEM_KB, BUILD_DIR   passed on to scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
root=${LIBTORCH2_ROOT:-/var/cache/msmedcap/trixie}
mirror=${LIBTORCH2_MIRROR:-http://deb.debian.org/debian}
[[ $(id -u) -eq 0 ]] || { echo "test_libtorch2.sh: needs root (debootstrap, mount, chroot)" >&2; exit 2; }

if [[ ! -x "$root/usr/bin/apt-get" ]]; then
  command -v debootstrap > /dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap
  echo "[libtorch2] debootstrap trixie into $root"
  mkdir -p "$(dirname "$root")"
  debootstrap --variant=minbase trixie "$root" "$mirror" > /dev/null
fi
cp /etc/resolv.conf "$root/etc/resolv.conf"

# /proc and /dev for the build and the tests (/dev/shm, /dev/null); unmounted on the way out.
mounted=()
cleanup() { for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount -l "${mounted[$i]}" 2> /dev/null || true; done; }
trap cleanup EXIT
mountpoint -q "$root/proc" || { mount -t proc proc "$root/proc"; mounted+=("$root/proc"); }
mountpoint -q "$root/dev" || { mount --bind /dev "$root/dev"; mounted+=("$root/dev"); }

# The working tree, as `git status` sees it, mirrored into the root.
dest="$root/src/msmedcap"
mkdir -p "$dest"
list=$(mktemp)
keep=$(mktemp)
git ls-files -co --exclude-standard -z > "$list"
git ls-files -co --exclude-standard | sort > "$keep"
tar --null -T "$list" -cf - | tar -xpf - -C "$dest"
# Files no longer in the tree go (the build folders and runs/ stay).
(cd "$dest" && find . \( -path ./runs -o -path './build*' \) -prune -o -type f -print | sed 's|^\./||' | sort |
   comm -23 - "$keep" | while IFS= read -r stale; do rm -f -- "$stale"; done)
rm -f "$list" "$keep"

echo "[libtorch2] $(chroot "$root" dpkg-query -W -f='${Package} ${Version}' libtorch-dev 2> /dev/null || echo 'libtorch-dev not yet installed')"
status=0
chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
  TEST_VMEM_KB="${TEST_VMEM_KB:-8000000}" BUILD_DIR="${BUILD_DIR:-build}" DEBIAN_FRONTEND=noninteractive \
  /bin/bash -c 'cd /src/msmedcap && ./scripts/test.sh "$@"' test.sh "$@" || status=$?
echo "[libtorch2] LibTorch $(chroot "$root" dpkg-query -W -f='${Version}' libtorch-dev) in $root; $(( $(date +%s) - start )) s"
exit $status
