"""`python3 -m ota`: the manufacturer's and support staff's OTA command.

    ota keygen DIR [--release]              CA + signing certificate (development by default)
    ota bundle --rootfs-image F | --sd-image F  -o OUT --compatible C --counter N ...
    ota verify BUNDLE --keyring K [--compatible C] [--floor N]
    ota publish|assign|status|watch ...     the fleet server (goosebit), see ota/fleet.py
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

from ota import bundle, fleet, keys
from ota import version as versions
from ota.errors import OtaError


def cmd_keygen(args: argparse.Namespace) -> int:
    made = keys.generate(args.dir, organisation=args.organisation, development=not args.release)
    print(f"CA certificate (goes into the device keyring): {made.ca_cert}")
    print(f"signing certificate and key (for `ota bundle`): {made.cert}, {made.key}")
    print(f"CA key: {made.ca_key} — keep it offline; it is only needed for a new signing cert")
    return 0


def cmd_bundle(args: argparse.Namespace) -> int:
    counter = args.counter or versions.default_counter()
    if args.sd_image:
        with tempfile.TemporaryDirectory(prefix="ota-rootfs-", dir=args.output.parent) as tmp:
            rootfs = bundle.rootfs_from_sd_image(args.sd_image, Path(tmp) / bundle.ROOTFS_NAME)
            made = bundle.make(rootfs, args.output, compatible=args.compatible, counter=counter,
                               display_version=args.version, cert=args.cert, key=args.key,
                               keyring=args.keyring)
    else:
        made = bundle.make(args.rootfs_image, args.output, compatible=args.compatible,
                           counter=counter, display_version=args.version, cert=args.cert,
                           key=args.key, keyring=args.keyring)
    print(json.dumps({"bundle": str(args.output), **asdict(made)}))
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    found = bundle.check(args.bundle, args.keyring, compatible=args.compatible, floor=args.floor)
    print(json.dumps({"bundle": str(args.bundle), "verified": True, **asdict(found)}))
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="ota", description=__doc__.splitlines()[0])
    sub = top.add_subparsers(dest="command", required=True)

    p = sub.add_parser("keygen", help="make a CA and a signing certificate")
    p.add_argument("dir", type=Path)
    p.add_argument("--release", action="store_true",
                   help="release keys (default: development keys, named as such)")
    p.add_argument("--organisation", default="CydYnni Hub")
    p.set_defaults(func=cmd_keygen)

    p = sub.add_parser("bundle", help="sign a root filesystem into a RAUC bundle")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--rootfs-image", type=Path, help="ext4 image of the root filesystem")
    src.add_argument("--sd-image", type=Path, help="built SD image (slot A is used)")
    p.add_argument("-o", "--output", type=Path, required=True)
    p.add_argument("--compatible", required=True, help="RAUC compatible (IMG_NAME-TARGET)")
    p.add_argument("--version", required=True, help="display version (IMG_VERSION)")
    p.add_argument("--counter", type=int, help="build counter (default: UTC YYYYMMDDHHMM)")
    p.add_argument("--cert", type=Path, required=True)
    p.add_argument("--key", type=Path, required=True)
    p.add_argument("--keyring", type=Path, help="check the signer against this keyring")
    p.set_defaults(func=cmd_bundle)

    p = sub.add_parser("verify", help="check a bundle's signature, compatible and floor")
    p.add_argument("bundle", type=Path)
    p.add_argument("--keyring", type=Path, required=True)
    p.add_argument("--compatible")
    p.add_argument("--floor", type=int, help="refuse bundles with a lower build counter")
    p.set_defaults(func=cmd_verify)

    fleet.add_commands(sub)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except (OtaError, OSError) as exc:
        print(f"ota: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
