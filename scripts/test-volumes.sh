#!/usr/bin/env bash
# Mounts small exFAT and NTFS images for the volume tests (test/volumes.test.ts) and
# writes the mount points to $RANGEGET_VOLUMES_FILE (default .cache/test-volumes.env),
# which the tests read; it also prints them as `export` lines. Idempotent: installs the
# tools if missing, reuses mounts that are up. Needs root (losetup, FUSE); without it,
# or where FUSE cannot mount, it writes nothing and the tests say so in one line.
# This kernel has no vfat/exfat/ntfs3 module, so both go through FUSE:
# exfat-fuse (exfatprogs makes the image) and ntfs-3g.
set -u
cd "$(dirname "$0")/.."
root="${RANGEGET_VOLUMES_DIR:-$PWD/.cache/volumes}"
envfile="${RANGEGET_VOLUMES_FILE:-$PWD/.cache/test-volumes.env}"
size_mib="${RANGEGET_VOLUME_MIB:-1400}"
mkdir -p "$root" "$(dirname "$envfile")"
: >"$envfile"

say() { echo "test-volumes: $*" >&2; }

if [ "$(id -u)" != 0 ]; then say "not root: no volumes mounted"; exit 0; fi
if ! command -v mkfs.exfat >/dev/null || ! command -v mount.exfat-fuse >/dev/null || ! command -v ntfs-3g >/dev/null; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq exfatprogs exfat-fuse ntfs-3g) >/dev/null 2>&1 \
    || say "could not install exfatprogs, exfat-fuse, ntfs-3g"
fi

mounted() { mountpoint -q "$1"; }

mount_exfat() {
  local img="$root/exfat.img" mnt="$root/exfat"
  mkdir -p "$mnt"
  if ! mounted "$mnt"; then
    rm -f "$img"; truncate -s "${size_mib}M" "$img" || return 1
    mkfs.exfat "$img" >/dev/null || return 1
    local dev; dev=$(losetup -f --show "$img") || return 1
    mount.exfat-fuse "$dev" "$mnt" >/dev/null 2>&1 || { losetup -d "$dev"; return 1; }
  fi
  chmod 1777 "$mnt" 2>/dev/null
  echo "$mnt"
}

mount_ntfs() {
  local img="$root/ntfs.img" mnt="$root/ntfs"
  mkdir -p "$mnt"
  if ! mounted "$mnt"; then
    rm -f "$img"; truncate -s "${size_mib}M" "$img" || return 1
    mkfs.ntfs -F -Q "$img" >/dev/null 2>&1 || return 1
    ntfs-3g -o permissions "$img" "$mnt" >/dev/null 2>&1 || return 1
  fi
  echo "$mnt"
}

exfat=$(mount_exfat) || { say "cannot mount exFAT"; exfat=""; }
ntfs=$(mount_ntfs) || { say "cannot mount NTFS"; ntfs=""; }
{ [ -n "$exfat" ] && echo "RANGEGET_TEST_EXFAT=$exfat"; [ -n "$ntfs" ] && echo "RANGEGET_TEST_NTFS=$ntfs"; } >"$envfile"
sed 's/^/export /' "$envfile"
