# CydYnni Hub A/B boot script (U-Boot hush), compiled to boot.scr with
#   mkimage -A arm64 -O linux -T script -C none -d boot.cmd boot.scr
# One script for the Raspberry Pi (rpi_arm64 U-Boot) and QEMU virt (qemu_arm64 U-Boot).
#
# The RAUC U-Boot contract: BOOT_ORDER ("A B"), BOOT_A_LEFT, BOOT_B_LEFT (tries left) live in
# rauc.env on this FAT (binary U-Boot env, 0x4000 bytes; Linux: /etc/fw_env.config).
# A second copy, rauc.env.b, survives a power cut during a write: each copy carries
# BOOT_SEQ (0, 1, 2, stepped mod 3 by every write here). rauc.env.b wins only when it is one
# step ahead of a valid rauc.env or rauc.env is invalid (bad CRC, short); a Linux write to
# rauc.env keeps the step and so wins the tie. Both are written, rauc.env.b first.
# The same rule in Python: ota/bootenv.py (which repairs the losing copy at boot).
# Each boot takes one try from the first slot in BOOT_ORDER that has tries left and saves
# the counter *before* booting, so a slot that never reaches `rauc status mark-good`
# (cydynni-ota-commit.service) runs out of tries and the next slot boots.
# Slot A = partition 2, slot B = partition 3, found by PARTUUID (kernel root=).

setenv slot
setenv rootpart
setenv cy_ok1
setenv cy_ok2
setenv cy_pick
setenv BOOT_SEQ
if load ${devtype} ${devnum}:${distro_bootpart} ${loadaddr} rauc.env.b; then
    if env import -c ${loadaddr} 0x4000 BOOT_SEQ; then
        setenv cy_ok2 1
    fi
fi
setenv cy_seq2 ${BOOT_SEQ}
setenv BOOT_SEQ
if load ${devtype} ${devnum}:${distro_bootpart} ${loadaddr} rauc.env; then
    if env import -c ${loadaddr} 0x4000 BOOT_SEQ; then
        setenv cy_ok1 1
        setenv cy_pick rauc.env
    fi
fi
setenv cy_seq1 ${BOOT_SEQ}
if test -z "${cy_seq1}"; then setenv cy_seq1 0; fi
if test -z "${cy_seq2}"; then setenv cy_seq2 0; fi
if test -n "${cy_ok2}"; then
    if test -z "${cy_ok1}"; then
        setenv cy_pick rauc.env.b
    else
        setexpr cy_next ${cy_seq1} + 1
        if test ${cy_next} -ge 3; then setenv cy_next 0; fi
        if test ${cy_seq2} -eq ${cy_next}; then setenv cy_pick rauc.env.b; fi
    fi
fi
setenv BOOT_ORDER
setenv BOOT_A_LEFT
setenv BOOT_B_LEFT
setenv BOOT_SEQ
if test -n "${cy_pick}"; then
    if load ${devtype} ${devnum}:${distro_bootpart} ${loadaddr} ${cy_pick}; then
        env import -c ${loadaddr} 0x4000 BOOT_ORDER BOOT_A_LEFT BOOT_B_LEFT BOOT_SEQ
    fi
else
    echo "cydynni: neither rauc.env nor rauc.env.b is valid; using the defaults"
fi
if test -z "${BOOT_SEQ}"; then setenv BOOT_SEQ 0; fi
if test -z "${BOOT_ORDER}"; then setenv BOOT_ORDER "A B"; fi
if test -z "${BOOT_A_LEFT}"; then setenv BOOT_A_LEFT 3; fi
if test -z "${BOOT_B_LEFT}"; then setenv BOOT_B_LEFT 3; fi

for s in ${BOOT_ORDER}; do
    if test -z "${slot}"; then
        if test "${s}" = "A" && test ${BOOT_A_LEFT} -gt 0; then
            setexpr BOOT_A_LEFT ${BOOT_A_LEFT} - 1
            setenv slot A
            setenv rootpart 2
        elif test "${s}" = "B" && test ${BOOT_B_LEFT} -gt 0; then
            setexpr BOOT_B_LEFT ${BOOT_B_LEFT} - 1
            setenv slot B
            setenv rootpart 3
        fi
    fi
done

if test -z "${slot}"; then
    echo "cydynni: no slot has tries left (order ${BOOT_ORDER}); resetting counters to 3"
    setenv BOOT_A_LEFT 3
    setenv BOOT_B_LEFT 3
fi
setexpr BOOT_SEQ ${BOOT_SEQ} + 1
if test ${BOOT_SEQ} -ge 3; then setenv BOOT_SEQ 0; fi
echo "cydynni: state from ${cy_pick}, order ${BOOT_ORDER}, A_LEFT ${BOOT_A_LEFT}, B_LEFT ${BOOT_B_LEFT}, seq ${BOOT_SEQ}, slot ${slot}"
env export -c -s 0x4000 ${loadaddr} BOOT_ORDER BOOT_A_LEFT BOOT_B_LEFT BOOT_SEQ
fatwrite ${devtype} ${devnum}:${distro_bootpart} ${loadaddr} rauc.env.b 0x4000
fatwrite ${devtype} ${devnum}:${distro_bootpart} ${loadaddr} rauc.env 0x4000
if test -z "${slot}"; then
    reset
fi

# Pi: the rpi_arm64 default addresses leave about 38 MiB for the kernel, and the Debian
# Image is bigger, so move them up. The serial console goes last because /dev/console
# (where systemd writes) is the last console= given.
part uuid ${devtype} ${devnum}:${rootpart} cydynni_rootuuid
if test "${board}" = "rpi"; then
    setenv kernel_addr_r 0x04000000
    setenv fdt_addr_r 0x0a000000
    setenv ramdisk_addr_r 0x0a200000
    setenv kernel_comp_addr_r 0x10000000
    setenv kernel_comp_size 0x04000000
    setenv cydynni_console "console=tty1 console=ttyS1,115200"
    if load ${devtype} ${devnum}:${rootpart} ${fdt_addr_r} /boot/dtbs/${fdtfile}; then
        setenv cydynni_fdt ${fdt_addr_r}
    else
        echo "cydynni: /boot/dtbs/${fdtfile} not in slot ${slot}, using the firmware DT"
        setenv cydynni_fdt ${fdt_addr}
    fi
else
    setenv cydynni_console "console=ttyAMA0,115200"
    setenv cydynni_fdt ${fdtcontroladdr}
fi

setenv bootargs "root=PARTUUID=${cydynni_rootuuid} rootwait ro rauc.slot=${slot} panic=5 ${cydynni_console}"
if load ${devtype} ${devnum}:${rootpart} ${kernel_addr_r} /boot/vmlinuz; then
    if load ${devtype} ${devnum}:${rootpart} ${ramdisk_addr_r} /boot/initrd.img; then
        booti ${kernel_addr_r} ${ramdisk_addr_r}:${filesize} ${cydynni_fdt}
    fi
fi
echo "cydynni: slot ${slot} failed to load or boot, resetting; the try is already counted"
reset
