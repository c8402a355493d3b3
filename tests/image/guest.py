"""Drive a QEMU guest booted from a copy of the built image: SSH (key injected through the
headless cydynni.txt on the copy's boot FAT), HTTP to the hub and MQTT to the broker, all
through 127.0.0.1 port forwards of QEMU's user networking (restrict=on)."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from image.qemu import BOOT_FAT_OFFSET, Built, boot_command, free_port

# A server entry in cydynni.txt: applied at first boot, its key removed from the boot file.
# The guest has no route out (restrict=on), so the hub must say the server is unreachable.
SERVER_URL = "https://server.invalid/"
SERVER_APIKEY = "5e7ea51de7ea51de7ea51de7ea51de70"
HEALTH_POLL_TIMEOUT = 3  # s; /health.json answers in well under a second once the hub is up
BOOT_TIMEOUT = 900  # first boot under TCG: firstboot secrets, MariaDB init, migrations


class GuestError(AssertionError):
    """The guest did not do what the test waited for; the message carries the console tail."""


class Guest:
    def __init__(self, built: Built, workdir: Path, grow_bytes: int = 2 << 30,
                 setup_extra: str = "") -> None:
        self.workdir = workdir
        self.disk = workdir / "disk.img"
        self.console = workdir / "console.log"
        self.key = workdir / "id_ed25519"
        self.u_boot = built.u_boot
        self.ports = {"http": free_port(), "mqtt": free_port(), "ssh": free_port()}
        self.process: subprocess.Popen | None = None
        self.started = 0.0
        self.hub_ready_seconds = 0.0
        self.root_a_sha256 = ""  # slot A's bytes before the first boot
        subprocess.run(["cp", "--sparse=always", str(built.image), str(self.disk)], check=True)
        subprocess.run(["truncate", "-s", f"+{grow_bytes}", str(self.disk)], check=True)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "boot-test",
                        "-f", str(self.key)], check=True)
        setup = workdir / "cydynni.txt"
        setup.write_text(f"hostname=cydynni-test\nssh_authorized_key="
                         f"{(workdir / 'id_ed25519.pub').read_text().strip()}\n"
                         f"server_url={SERVER_URL}\nserver_apikey={SERVER_APIKEY}\n"
                         f"{setup_extra}")
        subprocess.run(["mcopy", "-o", "-i", f"{self.disk}@@{BOOT_FAT_OFFSET}", str(setup),
                        "::/cydynni.txt"], check=True, env={**os.environ, "MTOOLS_SKIP_CHECK": "1"})

    # -- process ---------------------------------------------------------------------------
    def start(self) -> None:
        forwards = {self.ports["http"]: 80, self.ports["mqtt"]: 1883, self.ports["ssh"]: 22}
        argv = boot_command(self.disk, self.u_boot, forwards, self.workdir / "virt.dtb",
                            serial=f"file:{self.console}")
        self.started = time.monotonic()
        self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)

    def wait_exit(self, timeout: float) -> None:
        assert self.process is not None
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise self.error(f"QEMU still running {timeout:.0f} s after poweroff") from None

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def console_tail(self, lines: int = 40) -> str:
        if not self.console.exists():
            return "(no console output)"
        return "\n".join(self.console.read_text(errors="replace").splitlines()[-lines:])

    def error(self, message: str) -> GuestError:
        return GuestError(f"{message}\n--- serial console (last lines) ---\n{self.console_tail()}")

    def _check_alive(self) -> None:
        if self.process is None or self.process.poll() is not None:
            raise self.error("QEMU exited")

    # -- SSH -------------------------------------------------------------------------------
    def ssh(self, command_line: str, *, check: bool = True,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
        argv = ["ssh", "-i", str(self.key), "-p", str(self.ports["ssh"]),
                "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-o", "LogLevel=ERROR",
                "root@127.0.0.1", command_line]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise GuestError(f"ssh {command_line!r} exited {result.returncode}: "
                             f"{result.stdout}{result.stderr}")
        return result

    def wait_ssh(self, timeout: float = BOOT_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                if self.ssh("true", check=False, timeout=30).returncode == 0:
                    return
            except subprocess.TimeoutExpired:
                pass
            time.sleep(5)
        raise self.error(f"no SSH login within {timeout:.0f} s (headless key not applied?)")

    def boot_analysis(self, out: Path, title: str) -> str:
        """Where this boot spent its time (systemd-analyze), kept as an artifact; returns the
        one-line summary."""
        # The hub is ready before the boot has finished (cydynni-ota-commit still judges the
        # slot), and systemd-analyze has nothing to say until it has.
        self.ssh("systemctl is-system-running --wait", check=False, timeout=600)
        summary = self.ssh("systemd-analyze time", check=False).stdout.strip()
        chain = self.ssh("systemd-analyze critical-chain --no-pager cydynni-hub-web.service "
                         "multi-user.target", check=False).stdout
        blame = self.ssh("systemd-analyze blame --no-pager | head -n 25", check=False).stdout
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(f"# {title}\n\n{summary}\n\n## critical chain\n{chain}\n"
                       f"## blame (top 25)\n{blame}")
        return summary.splitlines()[0] if summary else "(systemd-analyze gave nothing)"

    # -- HTTP ------------------------------------------------------------------------------
    def url(self, path: str, **params: object) -> str:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        return f"http://127.0.0.1:{self.ports['http']}/{path.lstrip('/')}{query}"

    def http(self, path: str, *, data: dict | None = None, timeout: float = 30,
             **params: object) -> tuple[int, object]:
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        request = urllib.request.Request(self.url(path, **params), data=body)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, raw.decode(errors="replace")

    def wait_hub(self, timeout: float = BOOT_TIMEOUT) -> float:
        """Wait for /health.json 200; returns seconds since QEMU started."""
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                # A short timeout: until the guest's network is up, QEMU's user networking
                # accepts the connection and then nothing answers it. With 30 s, later boots
                # read 49.9-50.0 s on six of eight boots of two different images; with 3 s
                # the same disks read 44.3-53.3 s.
                status, last = self.http("health.json", timeout=HEALTH_POLL_TIMEOUT)
                if status == 200:
                    return time.monotonic() - self.started
            except (OSError, urllib.error.URLError) as exc:
                last = exc
            time.sleep(1)  # the boot figure is read from this poll
        raise self.error(f"hub not healthy within {timeout:.0f} s; last answer {last!r}")
