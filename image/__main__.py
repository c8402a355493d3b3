"""`python3 -m image build|qemu|host-tools` (./build.sh calls these)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from image import build, config, host, log, qemu
from image.errors import BuildError, StepFailed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m image", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    build_cmd = sub.add_parser(
        "build", help="build the SD image into DEPLOY_DIR",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Build the SD image: host tools, stage-scripts/ in order, deploy/ output.\n"
                    "Every variable below can be set in the environment or a -c file.",
        epilog="Configuration (build.conf):\n\n" + config.DEFAULT_CONF.read_text())
    build_cmd.add_argument("-c", "--config", type=Path,
                           help="extra config file applied over build.conf")
    build_cmd.add_argument("--no-host-tools", action="store_true",
                           help="do not install missing host tools with apt-get")
    qemu_cmd = sub.add_parser("qemu", help="boot the last built image in QEMU interactively")
    qemu_cmd.add_argument("--port", type=int, default=8080, help="host port for the hub's :80")
    sub.add_parser("host-tools", help="install the host tools (image/depends) and binfmt")
    args = parser.parse_args(argv)

    try:
        if args.command == "build":
            cfg = config.load(args.config)
            build.build(cfg, install_host_tools=not args.no_host_tools)
        elif args.command == "qemu":
            return qemu.interactive(args.port)
        else:
            host.prepare(config.load()["ARCH"])
    except StepFailed as exc:
        log.error(f"Build failed in {exc.step}: exit {exc.returncode}")
        log.error(f"see {log.log_path()} around line {exc.log_line}; its last lines:")
        path = log.log_path()
        if path is not None:
            for line in path.read_text(errors="replace").splitlines()[-25:]:
                print(f"    {line}", file=sys.stderr)
        return 1
    except BuildError as exc:
        log.error(str(exc))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
