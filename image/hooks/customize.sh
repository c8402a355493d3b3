#!/bin/sh
# mmdebstrap customize hook: undo essential.sh's stubs, build the one initramfs,
# link the DTBs for U-Boot and fetch the .debs whose files go onto the boot FAT.
# Environment: CYDYNNI_INITRAMFS_MODULES (file), CYDYNNI_BOOT_DEBS (output directory).
set -eu
root="$1"

restore() {
    rm -f "$root$1"
    chroot "$root" dpkg-divert --quiet --local --rename --divert "$1.cydynni-real" --remove "$1"
}
restore /usr/sbin/mariadbd
restore /usr/bin/mariadb-install-db
restore /usr/sbin/update-initramfs

# Only the listed modules: 23 s instead of 6 min under qemu-user, and a 10 MB initrd.
mkdir -p "$root/etc/initramfs-tools/conf.d"
printf '# cydynni: modules from /etc/initramfs-tools/modules only\nMODULES=list\n' \
    > "$root/etc/initramfs-tools/conf.d/cydynni-modules.conf"
cp "$CYDYNNI_INITRAMFS_MODULES" "$root/etc/initramfs-tools/modules"
chroot "$root" update-initramfs -c -k all

# /boot/vmlinuz, /boot/initrd.img and /boot/dtbs: the names boot.scr loads from a slot.
version=$(ls "$root/lib/modules" | sort -V | tail -n 1)
ln -sfn "vmlinuz-$version" "$root/boot/vmlinuz"
ln -sfn "initrd.img-$version" "$root/boot/initrd.img"
ln -sfn "../usr/lib/linux-image-$version" "$root/boot/dtbs"
test -f "$root/boot/initrd.img-$version"
test -d "$root/usr/lib/linux-image-$version/broadcom"

# Pi firmware and both U-Boot builds, from the same suite as the rootfs but not installed
# in it: raspi-firmware's kernel hooks would rewrite the FAT that boot.scr owns.
mkdir -p "$root/tmp/bootdebs" "$CYDYNNI_BOOT_DEBS"
chroot "$root" sh -c 'cd /tmp/bootdebs && apt-get download raspi-firmware u-boot-rpi u-boot-qemu'
mv "$root"/tmp/bootdebs/*.deb "$CYDYNNI_BOOT_DEBS/"
rmdir "$root/tmp/bootdebs"
