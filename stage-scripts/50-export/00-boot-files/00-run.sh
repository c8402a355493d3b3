# Boot FAT contents: Pi firmware, U-Boot, config.txt, boot.scr, rauc.env, cydynni.txt.
exec python3 -m image.bootfiles
