#!/bin/sh
# mmdebstrap customize hook: undo essential.sh's stubs, run the postponed steps once (both
# cores), build the one initramfs, link the DTBs for U-Boot and fetch the .debs whose files
# go onto the boot FAT.
# Environment: CYDYNNI_INITRAMFS_MODULES (file), CYDYNNI_INITRAMFS_OVERLAY (the overlay's
# etc/initramfs-tools), CYDYNNI_BOOT_DEBS (output directory), CYDYNNI_NATIVE_PYTHON (the
# suite's python3-minimal for the build host, unpacked by image/bootstrap.py).
set -eu
root="$1"

restore() {
    rm -f "$root$1"
    chroot "$root" dpkg-divert --quiet --local --rename --divert "$1.cydynni-real" --remove "$1"
}
for path in /usr/sbin/mariadbd /usr/bin/mariadb-install-db /usr/sbin/update-initramfs \
        /usr/bin/py3compile /usr/lib/python3.13/py_compile.py /usr/sbin/update-ca-certificates \
        /usr/bin/systemd-hwdb /usr/sbin/depmod; do
    restore "$path"
done

# Every module the packages' postinsts would have byte-compiled (the root is read-only on
# the device, so a missing .pyc would be compiled again at every start), by the same
# Python version built for this host (image/bootstrap.py unpacked it into
# $CYDYNNI_NATIVE_PYTHON; hooks/pycompile.py checks the version and magic): a .pyc does
# not depend on the CPU, and natively this takes ~2 s instead of ~100 CPU-seconds under
# qemu-user.  The root is bind-mounted at /target in a mount namespace of its own, so the
# mount ends with the command.  It, the hwdb and the CA links run beside depmod and the
# initramfs.
started=$(date +%s)
pids=""
trap 'kill $pids 2>/dev/null || true' EXIT
chroot "$root" find /usr/lib/python3.13 /usr/lib/python3/dist-packages /usr/share/python3 \
    -name '*.py' -xtype f | sort > "$root/tmp/cydynni-py"
(umask 022; unshare --mount --propagation private sh -eu -c \
    'mount --bind "$1" "$2/target"; exec chroot "$2" /usr/bin/python3 -E -S /pycompile.py /target 3.13' \
    sh "$root" "$CYDYNNI_NATIVE_PYTHON" < "$root/tmp/cydynni-py") &
pids="$pids $!"
chroot "$root" systemd-hwdb --usr update &
pids="$pids $!"
chroot "$root" update-ca-certificates --fresh &
pids="$pids $!"

# Only the listed modules: 23 s instead of 6 min under qemu-user, and a 10 MB initrd.
# The hook copies every listed module in; /etc/initramfs-tools/modules holds only those
# marked "load", which /init loads before udev (udev loads the rest for their devices).
# Both stay in the root, so a later update-initramfs (roles/readonly_root) does the same.
mkdir -p "$root/etc/initramfs-tools/conf.d" "$root/etc/initramfs-tools/hooks"
printf '# cydynni: modules from /etc/initramfs-tools/modules and hooks/cydynni-modules only\nMODULES=list\n' \
    > "$root/etc/initramfs-tools/conf.d/cydynni-modules.conf"
awk '!/^#/ && $2 == "load" { print $1 }' "$CYDYNNI_INITRAMFS_MODULES" \
    > "$root/etc/initramfs-tools/modules"
{
    printf '#!/bin/sh\n# Written by image/hooks/customize.sh from %s.\n' \
        "stage-scripts/00-bootstrap/01-kernel/files/initramfs-modules"
    printf 'PREREQ=""\nprereqs() { echo "$PREREQ"; }\n'
    printf 'case "$1" in\n    prereqs) prereqs; exit 0 ;;\nesac\n'
    printf '. /usr/share/initramfs-tools/hook-functions\n'
    printf 'manual_add_modules %s\n' "$(awk '!/^#/ && NF { print $1 }' "$CYDYNNI_INITRAMFS_MODULES" | tr '\n' ' ')"
} > "$root/etc/initramfs-tools/hooks/cydynni-modules"
chmod 0755 "$root/etc/initramfs-tools/hooks/cydynni-modules"
# The overlay's initramfs files must be in this initramfs (init-bottom/cydynni-machine-id:
# the persistent machine-id for PID 1, without which every boot had a new one); stage 10
# copies the same files again with the rest of the overlay.
cp -R --no-dereference --preserve=mode "$CYDYNNI_INITRAMFS_OVERLAY/." \
    "$root/etc/initramfs-tools/"
for version in $(ls "$root/lib/modules"); do
    chroot "$root" depmod "$version"
done
chroot "$root" update-initramfs -c -k all
echo "[INFO] cydynni build: initramfs after $(( $(date +%s) - started )) s" >&2

for pid in $pids; do
    wait "$pid"
done
pids=""
rm -f "$root"/tmp/cydynni-py*
echo "[INFO] cydynni build: postponed steps done after $(( $(date +%s) - started )) s" >&2

# /boot/vmlinuz, /boot/initrd.img and /boot/dtbs: the names boot.scr loads from a slot.
version=$(ls "$root/lib/modules" | sort -V | tail -n 1)
ln -sfn "vmlinuz-$version" "$root/boot/vmlinuz"
ln -sfn "initrd.img-$version" "$root/boot/initrd.img"
ln -sfn "../usr/lib/linux-image-$version" "$root/boot/dtbs"
test -f "$root/boot/initrd.img-$version"
test -d "$root/usr/lib/linux-image-$version/broadcom"

# Pi firmware and both U-Boot builds, from the same suite as the rootfs but not installed
# in it: raspi-firmware's kernel hooks would rewrite the FAT that boot.scr owns.
# The host's apt with the chroot's config and lists: the emulated apt-get took ~30 s.
mkdir -p "$CYDYNNI_BOOT_DEBS"
(cd "$CYDYNNI_BOOT_DEBS" && APT_CONFIG="$MMDEBSTRAP_APT_CONFIG" apt-get \
    -o APT::Sandbox::User=root download raspi-firmware u-boot-rpi u-boot-qemu)
