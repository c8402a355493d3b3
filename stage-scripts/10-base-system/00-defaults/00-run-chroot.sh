# Defaults every device starts from; the headless cydynni.txt and first boot change them
# on /data. The overlay (next step) may replace any of these files.
echo cydynni > /etc/hostname
printf '127.0.0.1\tlocalhost\n127.0.1.1\tcydynni\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' > /etc/hosts
ln -sf /usr/share/zoneinfo/Etc/UTC /etc/localtime
echo Etc/UTC > /etc/timezone
mkdir -p /boot/firmware /data
