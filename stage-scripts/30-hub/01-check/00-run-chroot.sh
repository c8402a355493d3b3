# The hub role must have installed the app: fail the build here, not at the first boot test.
test -x /usr/bin/hub || { echo "[ERROR] /usr/bin/hub missing: the hub role did not install the app" >&2; exit 1; }
hub --help > /dev/null || { echo "[ERROR] 'hub --help' fails with the image's Python" >&2; exit 1; }
for unit in cydynni-hub-web.service cydynni-hub-worker.service; do
    systemctl is-enabled --quiet "$unit" || { echo "[ERROR] $unit is not enabled" >&2; exit 1; }
done
