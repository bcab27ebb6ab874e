#!/bin/bash
# Builds the Debian VM image that the QEMU boot test (tests/vm) boots: OUTDIR/vmlinuz,
# OUTDIR/initrd.img (QEMU's direct kernel boot) and OUTDIR/rootfs.img (a sparse 4 GiB ext4 file
# system, the guest's /dev/vda). Run as root (debootstrap); `make vmimage` runs it and caches the
# result. Usage: build.sh OUTDIR
#
# The image is the host's own Debian release, from the mirror the host's apt already uses: no
# release or mirror is named in the repository, and the packages are the ones the host trusts.
set -euo pipefail

log() { echo "vmimage: $*"; }
die() { echo "vmimage: $*" >&2; exit 1; }

[ $# -eq 1 ] || die "usage: $0 OUTDIR"
out=$1
here=$(cd "$(dirname "$0")" && pwd)
[ "$(id -u)" -eq 0 ] || die "must run as root (debootstrap, and files owned by root in the image)"

# shellcheck source=/dev/null
codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
[ -n "$codename" ] || die "no VERSION_CODENAME in /etc/os-release"

# The first URI of the main archive of $codename (a suite named exactly $codename, not -security
# or -updates) in the host's apt sources: deb822 .sources stanzas, then one-line sources.list.
mirror_of_host() {
	local f
	shopt -s nullglob
	for f in /etc/apt/sources.list.d/*.sources; do
		awk -v suite="$codename" '
			BEGIN { RS = ""; FS = "\n" }
			{
				types = ""; uris = ""; suites = ""; enabled = "yes"
				for (i = 1; i <= NF; i++) {
					line = $i
					if (line ~ /^[ \t]*#/) continue
					if (tolower(line) ~ /^types:/)   { sub(/^[^:]*:/, "", line); types = line }
					if (tolower(line) ~ /^uris:/)    { sub(/^[^:]*:/, "", line); uris = line }
					if (tolower(line) ~ /^suites:/)  { sub(/^[^:]*:/, "", line); suites = line }
					if (tolower(line) ~ /^enabled:/) { sub(/^[^:]*:[ \t]*/, "", line); enabled = tolower(line) }
				}
				if (enabled == "no") next
				if ((" " types " ") !~ /[ \t]deb[ \t]/) next
				if ((" " suites " ") !~ ("[ \t]" suite "[ \t]")) next
				split(uris, u, /[ \t]+/)
				for (j in u) if (u[j] != "") { print u[j]; exit }
			}' "$f"
	done
	if [ -f /etc/apt/sources.list ]; then
		sed -E 's/\[[^]]*\]//' /etc/apt/sources.list |
			awk -v suite="$codename" '$1 == "deb" && $3 == suite { print $2 }'
	fi
}
mirror=$(mirror_of_host | sed -n 1p)
[ -n "$mirror" ] || die "no apt source for the main $codename archive in /etc/apt/sources.list.d/*.sources or /etc/apt/sources.list"

packages=$(sed -e 's/#.*//' -e 's/[[:space:]]//g' "$here/packages.txt" | grep -v '^$' | paste -sd, -)

# The scratch tree is on disk, not in /tmp: /tmp may be a tmpfs mounted nodev (debootstrap makes
# device nodes) and too small for a root file system.
scratch=$(mktemp -d "${TMPDIR:-/var/tmp}/vmimage.XXXXXX")
root=$scratch/root

# debootstrap mounts /proc and /sys in the tree and unmounts them when it finishes, but not when it
# fails: unmount whatever is still mounted below the tree before removing it, and leave the
# scratch directory in place (rather than delete through a mount) if that fails.
cleanup() {
	local rc=$?
	awk -v r="$root" 'index($2, r) == 1 { print $2 }' /proc/self/mounts | sort -r |
		while read -r m; do umount "$m" 2>/dev/null || umount -l "$m" || true; done
	if awk -v r="$root" 'index($2, r) == 1 { found = 1 } END { exit !found }' /proc/self/mounts; then
		echo "vmimage: $root still has mounts; left $scratch in place" >&2
	else
		rm -rf "$scratch"
	fi
	rm -f "$out/rootfs.img.tmp"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log "debootstrap $codename (minbase + packages.txt) into $root"
debootstrap --variant=minbase --include="$packages" "$codename" "$root" "$mirror" >"$scratch/debootstrap.log" 2>&1 ||
	{ tail -n 30 "$scratch/debootstrap.log" >&2; die "debootstrap failed (last lines above)"; }

log "configuring the tree"
install -m 0644 "$here/fstab" "$root/etc/fstab"
install -m 0644 "$here/hostname" "$root/etc/hostname"
install -m 0644 "$here/hosts" "$root/etc/hosts"
rm -f "$root/etc/resolv.conf"
install -m 0644 "$here/resolv.conf" "$root/etc/resolv.conf"
install -m 0644 "$here/50-dhcp.network" "$root/etc/systemd/network/50-dhcp.network"
install -m 0644 "$here/90-llm-sandbox-vmtest.cfg" "$root/etc/cloud/cloud.cfg.d/90-llm-sandbox-vmtest.cfg"
systemctl --root="$root" --quiet enable systemd-networkd.service systemd-networkd-wait-online.service
# The timers would run apt in the middle of a test, fetching lists from a network the VM has not got.
systemctl --root="$root" --quiet disable apt-daily.timer apt-daily-upgrade.timer
# glibc ships C.UTF-8 precompiled; generate it only if this release does not.
if [ ! -e "$root/usr/lib/locale/C.utf8" ] && [ ! -e "$root/usr/lib/locale/C.UTF-8" ]; then
	log "generating the C.UTF-8 locale"
	chroot "$root" localedef -i C -f UTF-8 C.UTF-8
fi
# Empty, not absent: systemd then makes a new machine ID at each boot of the (snapshot) disk, and
# no two VMs share the one debootstrap happened to write.
: >"$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id"
usermod --root "$root" --lock root
# Package lists and downloaded .debs are of no use in the VM; the image only gets smaller.
rm -rf "$root/var/lib/apt/lists/"* "$root/var/cache/apt/"*.bin "$root/var/cache/apt/archives/"*.deb

# The kernel and initrd the /vmlinuz and /initrd.img symlinks name; resolved inside the tree (an
# absolute link target would otherwise resolve on the host).
in_tree() {
	local t
	t=$(readlink "$root/$1") || die "no /$1 in the image"
	echo "$root/${t#/}"
}
vmlinuz=$(in_tree vmlinuz)
initrd=$(in_tree initrd.img)
kver=${vmlinuz##*/vmlinuz-}
log "kernel $kver"

# The initrd must mount the root disk itself: virtio-blk on virtio-pci, ext4. Each module is in
# the initrd or built into the kernel.
modules=$(chroot "$root" lsinitramfs "/boot/initrd.img-$kver")
for mod in virtio_pci virtio_blk ext4; do
	if ! grep -Eq "/${mod}\.ko(\.[a-z]+)?$" <<<"$modules" &&
		! grep -Eq "/${mod}\.ko$" "$root/lib/modules/$kver/modules.builtin"; then
		die "the initrd has no $mod module (and the kernel has it not built in)"
	fi
done
log "initrd has virtio_pci, virtio_blk and ext4"

mkdir -p "$out"
install -m 0644 "$vmlinuz" "$out/vmlinuz"
install -m 0644 "$initrd" "$out/initrd.img"

log "making the 4 GiB sparse ext4 image"
mkfs.ext4 -q -F -L root -d "$root" "$out/rootfs.img.tmp" 4G
chmod 0644 "$out/rootfs.img.tmp"
mv "$out/rootfs.img.tmp" "$out/rootfs.img"
# Under sudo, the invoking user owns the result (the cache is theirs to remove).
if [ -n "${SUDO_UID:-}" ] && [ -n "${SUDO_GID:-}" ]; then
	chown -R "$SUDO_UID:$SUDO_GID" "$out"
fi
log "done: $out ($(du -sh --apparent-size "$out/rootfs.img" | cut -f1) apparent, $(du -sh "$out/rootfs.img" | cut -f1) on disk)"
