# Partition images (mkfs -d / mtools) assembled into one MBR disk image, no loop devices.
exec python3 -m image.disk
