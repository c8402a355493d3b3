# deploy/: raw image, .img.xz, .bmap, .sha256, QEMU U-Boot.
exec python3 -m image.deploy
