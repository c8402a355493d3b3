"""The `hub` command: `hub web`, `hub worker`, `hub admin …`.

Every subcommand reads the one configuration (hub/config.py). Errors print one `[ERROR]` line
and exit non-zero; they never print secrets.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import json
import logging
import signal
import sys
import threading
from collections.abc import Sequence

from hub.config import ConfigError, load_config
from hub.context import HubContext
from hub.db import migrate
from hub.errors import DatabaseError
from hub.user.store import UserError


def _web(args: argparse.Namespace, ctx: HubContext) -> int:
    from cheroot import wsgi

    from hub.web.app import create_app

    config = ctx.config
    app = create_app(config, ctx)
    host = args.host or config.web_host
    port = args.port or config.web_port
    server = wsgi.Server((host, port), app, numthreads=config.web_threads,
                         server_name="cydynni-hub")
    server.max_request_body_size = config.max_body_bytes
    # systemd stops us with SIGTERM. Stop the server from another thread (as cheroot expects):
    # raising in the handler could leave a lock inside the server held and hang the stop.
    signal.signal(signal.SIGTERM,
                  lambda *_: threading.Thread(target=server.stop, daemon=True).start())
    logging.getLogger(__name__).info("hub web listening on http://%s:%s/", host, port)
    with contextlib.suppress(KeyboardInterrupt):
        server.safe_start()
    server.stop()
    logging.getLogger(__name__).info("hub web stopped")
    return 0


def _worker(args: argparse.Namespace, ctx: HubContext) -> int:
    from hub.worker.loop import run_worker

    return run_worker(ctx)


def _admin(args: argparse.Namespace, ctx: HubContext) -> int:
    users = ctx.users
    if args.action == "migrate":
        applied = migrate(ctx.db)
        print(f"[INFO] migrations applied: {applied or 'none (up to date)'}")
        return 0
    migrate(ctx.db)
    if args.action == "create-user":
        password = args.password or getpass.getpass("password: ")
        user = users.register(args.username, password, args.email or "")
        print(f"[INFO] created user {user.username} (id {user.id}, admin={user.is_admin})")
    elif args.action == "reset-password":
        password = args.password or getpass.getpass("new password: ")
        user = users.set_password(args.username, password)
        print(f"[INFO] password of {user.username} changed; its sessions were logged out")
    elif args.action == "list-users":
        print(json.dumps([{"id": u.id, "username": u.username, "admin": u.is_admin}
                          for u in users.list()], indent=2))
    elif args.action == "show-config":
        print(json.dumps(ctx.config.public(), indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hub", description="CydYnni Hub")
    parser.add_argument("--config", help="TOML config file (default: $HUB_CONFIG or "
                                         "/data/hub/hub.toml)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    web = sub.add_parser("web", help="serve the web app and HTTP API")
    web.add_argument("--host", help="listen address (default: web_host setting)")
    web.add_argument("--port", type=int, help="listen port (default: web_port setting)")
    web.set_defaults(run=_web)
    worker = sub.add_parser("worker", help="MQTT ingest, feed flushing and device control")
    worker.set_defaults(run=_worker)
    admin = sub.add_parser("admin", help="administration on the device console")
    actions = admin.add_subparsers(dest="action", required=True)
    actions.add_parser("migrate", help="apply database migrations")
    create = actions.add_parser("create-user", help="register a user (first is admin)")
    create.add_argument("username")
    create.add_argument("--email")
    create.add_argument("--password", help="prompted for when omitted")
    reset = actions.add_parser("reset-password", help="set a user's password")
    reset.add_argument("username")
    reset.add_argument("--password", help="prompted for when omitted")
    actions.add_parser("list-users", help="list users")
    actions.add_parser("show-config", help="print the settings in force (secrets hidden)")
    admin.set_defaults(run=_admin)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        ctx = HubContext(load_config(args.config))
        return args.run(args, ctx)
    except (ConfigError, DatabaseError) as exc:
        print(f"[ERROR] {exc}", file=sys.stderr)
        return 2
    except UserError as exc:
        print(f"[ERROR] {exc}", file=sys.stderr)
        return 1
