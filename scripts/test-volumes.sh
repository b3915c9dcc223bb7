#!/usr/bin/env bash
# Mounts small volumes for the volume tests (test/volumes.test.ts) and the volume
# timings (bench/volumes.mjs), and writes their mount points to $RANGEGET_VOLUMES_FILE
# (default .cache/test-volumes.env), which both read; it also prints them as `export`
# lines (.ci/run evals them).
#   exFAT   exfatprogs makes the image, exfat-fuse mounts it (FUSE, over a loop device)
#   NTFS    mkfs.ntfs and ntfs-3g (FUSE)
#   XFS     xfsprogs, a loop mount (kernel driver)
#   btrfs   btrfs-progs, a loop mount (kernel driver)
#   FAT32   dosfstools makes it, fusefat mounts it (FUSE). Only for the size refusal:
#           fusefat loses writes (out-of-order writes past the end leave the file short,
#           appends fail with EPERM, ftruncate cannot grow a file, chmod is ENOSYS), so
#           nothing is downloaded onto it. Its image is 6 GiB (sparse on the host), so a
#           5 GiB file fits its free space and only FAT32's 4 GiB - 1 per file refuses it.
# This kernel has no vfat, exfat or ntfs3 module, hence FUSE for those three.
# Idempotent: installs the tools if missing (apt-get), reuses mounts that are up, and
# makes a fresh image for a volume that is not mounted. Needs root (losetup, mount,
# FUSE); without root, or without FUSE, it says so in one line and mounts what it can
# (nothing, or only XFS and btrfs); the tests then skip the missing volumes in one line.
#   scripts/test-volumes.sh         mount, write the file, print the exports
#   scripts/test-volumes.sh down    unmount all, detach their loop devices, remove the images
set -u
cd "$(dirname "$0")/.."
root="${RANGEGET_VOLUMES_DIR:-$PWD/.cache/volumes}"
envfile="${RANGEGET_VOLUMES_FILE:-$PWD/.cache/test-volumes.env}"
size_mib="${RANGEGET_VOLUME_MIB:-1400}"
fat32_mib="${RANGEGET_FAT32_MIB:-6144}"
PATH=$PATH:/usr/sbin:/sbin

say() { echo "test-volumes: $*" >&2; }
mounted() { mountpoint -q "$1"; }
# Loop devices still attached to image $1 (a FUSE daemon that died leaves them behind).
detach_loops() { local dev; for dev in $(losetup -j "$1" -n -O NAME 2>/dev/null); do losetup -d "$dev" 2>/dev/null; done; }

if [ "${1:-}" = down ]; then
  for name in exfat ntfs xfs btrfs fat32; do
    if mounted "$root/$name"; then umount "$root/$name" 2>/dev/null || fusermount -u "$root/$name" 2>/dev/null || say "cannot unmount $root/$name"; fi
    detach_loops "$root/$name.img"
    rm -f "$root/$name.img"
    rmdir "$root/$name" 2>/dev/null
  done
  rm -f "$envfile"
  exit 0
fi

mkdir -p "$root" "$(dirname "$envfile")"
: >"$envfile"
if [ "$(id -u)" != 0 ]; then say "not root: no volumes mounted; the volume tests will be skipped"; exit 0; fi

fuse=yes
[ -c /dev/fuse ] || fuse=no
has_fs() { grep -qw "$1" /proc/filesystems; }

# The tools each volume needs, as `command:package`; only the missing are installed.
needed=(mkfs.xfs:xfsprogs mkfs.btrfs:btrfs-progs)
[ $fuse = yes ] && needed+=(mkfs.exfat:exfatprogs mount.exfat-fuse:exfat-fuse ntfs-3g:ntfs-3g mkfs.ntfs:ntfs-3g mkfs.vfat:dosfstools fusefat:fusefat)
missing=()
for pair in "${needed[@]}"; do command -v "${pair%%:*}" >/dev/null || missing+=("${pair#*:}"); done
if [ ${#missing[@]} -gt 0 ]; then
  # The package lists may be missing on a fresh machine: update once, then install.
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}") >/dev/null 2>&1 \
    || say "could not install ${missing[*]}"
fi

# A fresh image of $2 MiB at $1 (sparse on the host: only what is written takes space).
fresh_image() { detach_loops "$1"; rm -f "$1"; truncate -s "${2}M" "$1"; }

mount_exfat() {
  local img="$root/exfat.img" mnt="$root/exfat" dev
  mkdir -p "$mnt"
  if ! mounted "$mnt"; then
    fresh_image "$img" "$size_mib" && mkfs.exfat "$img" >/dev/null || return 1
    dev=$(losetup -f --show "$img") || return 1
    mount.exfat-fuse "$dev" "$mnt" >/dev/null 2>&1 || { losetup -d "$dev"; return 1; }
  fi
}

mount_ntfs() {
  local img="$root/ntfs.img" mnt="$root/ntfs"
  mkdir -p "$mnt"
  if ! mounted "$mnt"; then
    fresh_image "$img" "$size_mib" && mkfs.ntfs -F -Q "$img" >/dev/null 2>&1 || return 1
    ntfs-3g -o permissions "$img" "$mnt" >/dev/null 2>&1 || return 1
  fi
}

# XFS or btrfs ($1), with the kernel's own driver over a loop device.
mount_kernel() {
  local name=$1 img="$root/$1.img" mnt="$root/$1"
  has_fs "$name" || return 1
  mkdir -p "$mnt"
  if ! mounted "$mnt"; then
    fresh_image "$img" "$size_mib" && "mkfs.$name" -q -f "$img" >/dev/null 2>&1 || return 1
    mount -o loop "$img" "$mnt" 2>/dev/null || return 1
  fi
}

mount_fat32() {
  local img="$root/fat32.img" mnt="$root/fat32"
  mkdir -p "$mnt"
  if ! mounted "$mnt"; then
    fresh_image "$img" "$fat32_mib" && mkfs.vfat -F 32 "$img" >/dev/null 2>&1 || return 1
    fusefat -o rw+ "$img" "$mnt" >/dev/null 2>&1 || return 1
    mounted "$mnt" || return 1
  fi
}

# Prints `RANGEGET_TEST_<NAME>=<mount point>` for each volume mounted; one line for each that is not.
{
  if [ $fuse = yes ]; then
    if mount_exfat; then echo "RANGEGET_TEST_EXFAT=$root/exfat"; else say "cannot mount exFAT (exfat-fuse)"; fi
    if mount_ntfs; then echo "RANGEGET_TEST_NTFS=$root/ntfs"; else say "cannot mount NTFS (ntfs-3g)"; fi
    if mount_fat32; then echo "RANGEGET_TEST_FAT32=$root/fat32"; else say "cannot mount FAT32 (fusefat)"; fi
  else
    say "no FUSE here (/dev/fuse missing): exFAT, NTFS and FAT32 not mounted; their tests will be skipped"
  fi
  if mount_kernel xfs; then echo "RANGEGET_TEST_XFS=$root/xfs"; else say "cannot mount XFS (no xfs in /proc/filesystems, no loop device, or no mkfs.xfs)"; fi
  if mount_kernel btrfs; then echo "RANGEGET_TEST_BTRFS=$root/btrfs"; else say "cannot mount btrfs (no btrfs in /proc/filesystems, no loop device, or no mkfs.btrfs)"; fi
} >"$envfile"
for mnt in $(cut -d= -f2- "$envfile"); do chmod 1777 "$mnt" 2>/dev/null; done
sed 's/^/export /' "$envfile"
