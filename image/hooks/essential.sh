#!/bin/sh
# mmdebstrap essential hook: runs once the essential packages are in, before the rest.
# Sets the build-time traps that keep an emulated arm64 install fast and honest
# (see shared/reference/build-feasibility.md); customize.sh undoes them.
set -eu
root="$1"

# Never start daemons inside the build chroot (removed by the finishing stage).
printf '#!/bin/sh\nexit 101\n' > "$root/usr/sbin/policy-rc.d"
chmod 0755 "$root/usr/sbin/policy-rc.d"

# Kernel and initrd symlinks go to /boot (vmlinuz, initrd.img): boot.scr loads those names.
printf 'do_symlinks = yes\nlink_in_boot = yes\n' > "$root/etc/kernel-img.conf"

# Divert a program to a stub that succeeds; the real binary waits in <path>.cydynni-real.
postpone() {
    chroot "$root" dpkg-divert --quiet --local --rename --divert "$1.cydynni-real" --add "$1"
    printf '#!/bin/sh\necho "[INFO] cydynni build: %s postponed" >&2\nexit 0\n' "$1" > "$root$1"
    chmod 0755 "$root$1"
}
# update-initramfs would run twice (kernel postinst + trigger), ~6 min each under qemu-user.
postpone /usr/sbin/update-initramfs
# mariadbd under qemu-user maps terabytes and is OOM-killed while the postinst hides the
# failure; the database is initialised on the device at first boot instead.
postpone /usr/bin/mariadb-install-db
postpone /usr/sbin/mariadbd
# dpkg configures one package at a time, so one core idles; these run once in customize.sh,
# side by side: byte-compilation (natively there; one emulated Python start per package
# otherwise, 236 s),
# update-ca-certificates (the postinst runs it twice), the hwdb and depmod.
postpone /usr/bin/py3compile
postpone /usr/sbin/update-ca-certificates
postpone /usr/bin/systemd-hwdb
postpone /usr/sbin/depmod
# python3.13(-minimal)'s postinsts compile the standard library with this file as a script.
chroot "$root" dpkg-divert --quiet --local --rename \
    --divert /usr/lib/python3.13/py_compile.py.cydynni-real --add /usr/lib/python3.13/py_compile.py
mkdir -p "$root/usr/lib/python3.13"
printf 'import sys\nprint("[INFO] cydynni build: py_compile postponed", file=sys.stderr)\n' \
    > "$root/usr/lib/python3.13/py_compile.py"
