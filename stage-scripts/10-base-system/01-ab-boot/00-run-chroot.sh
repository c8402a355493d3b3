# A/B boot: confirm a slot once the hub is up (see overlays/rootfs/usr/libexec/cydynni-ota-commit).
systemctl enable cydynni-ota-commit.service
