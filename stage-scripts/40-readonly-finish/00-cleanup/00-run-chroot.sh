# Leave nothing device-specific or build-only in the read-only root.
rm -f /usr/sbin/policy-rc.d
apt-get clean
rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin
# Per-device identity is made at first boot (cydynni firstboot), never shipped.
rm -f /etc/ssh/ssh_host_*
if [ ! -L /etc/machine-id ]; then : > /etc/machine-id; fi
if [ ! -L /var/lib/dbus/machine-id ]; then rm -f /var/lib/dbus/machine-id; fi
rm -f /var/lib/systemd/random-seed /var/lib/systemd/credential.secret
find /var/log -xdev -type f -delete
rm -rf /tmp/* /tmp/.[!.]* /var/tmp/* /root/.ansible /root/.cache
rm -f /var/cache/debconf/*-old /var/lib/dpkg/*-old
