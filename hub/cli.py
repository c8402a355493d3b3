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

from hub.config import ConfigError, config_path, load_config
from hub.context import HubContext
from hub.db import migrate, wait_until_listening
from hub.errors import DatabaseError
from hub.notify import notify
from hub.sync.link import InvalidLink, LinkError
from hub.sync.store import ProvisionRequest, SyncBusy
from hub.update.agent import AgentServer, UpdateRequestError
from hub.user.store import UserError


def _web(args: argparse.Namespace, ctx: HubContext) -> int:
    from hub.web.app import build_app
    from hub.web.server import make_server

    config = ctx.config
    app = build_app(config, ctx)
    wait_until_listening(config)
    migrate(ctx.db)
    host = args.host or config.web_host
    port = args.port or config.web_port
    server = make_server(app, host, port, config.web_threads)
    # systemd stops us with SIGTERM. Stop the server from another thread (as cheroot expects):
    # raising in the handler could leave a lock inside the server held and hang the stop.
    signal.signal(signal.SIGTERM,
                  lambda *_: threading.Thread(target=server.stop, daemon=True).start())
    with contextlib.suppress(KeyboardInterrupt):
        server.prepare()  # binds the port: from here on connections queue until served
        logging.getLogger(__name__).info("hub web listening on http://%s:%s/", host, port)
        notify("READY=1")
        server.serve()
    server.stop()
    logging.getLogger(__name__).info("hub web stopped")
    return 0


def _worker(args: argparse.Namespace, ctx: HubContext) -> int:
    from hub.worker.loop import run_worker

    wait_until_listening(ctx.config)
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
    elif args.action == "provision":
        return _provision(args, ctx)
    elif args.action == "sync":
        return _sync(ctx)
    elif args.action == "update-server":
        return _update_server(args, ctx)
    return 0


def _update_server(args: argparse.Namespace, ctx: HubContext) -> int:
    """Point the update agent at its fleet server (as cydynni.txt's update_* keys do)."""
    token = args.token or getpass.getpass("device token on the update server: ")
    try:
        server = AgentServer(args.url, args.device_id, token, args.tenant, args.allow_http)
        written = ctx.updates.configure(server)
    except UpdateRequestError as exc:
        print(f"[ERROR] {exc}", file=sys.stderr)
        return 2
    print(f"[INFO] update server stored in {written}; restart the agent to use it: "
          "systemctl restart cydynni-ota-agent")
    return 0


def _provision(args: argparse.Namespace, ctx: HubContext) -> int:
    """Check the server and account with a test call, then store the link (0600)."""
    url = args.url or ctx.config.server_url
    if not url:
        print("[ERROR] give --url (no server_url setting either)", file=sys.stderr)
        return 2
    # bandit B105: an empty start value, not a credential; it is asked for below when needed.
    password = ""  # nosec B105
    if args.username and not args.apikey:
        password = getpass.getpass("server password: ") if args.password is None \
            else args.password
    if args.user:
        user_id = ctx.users.by_username(args.user).id
    else:
        admins = [u.id for u in ctx.users.list() if u.is_admin]
        user_id = admins[0] if admins else ctx.config.mqtt_user_id
    request = ProvisionRequest(url=url, apikey=args.apikey or "", username=args.username or "",
                               password=password, allow_http=args.allow_http,
                               ca_file=args.ca_file or "", user_id=user_id)
    try:
        link = ctx.sync.provision(request)
    except (InvalidLink, LinkError) as exc:
        print(f"[ERROR] not provisioned: {exc}", file=sys.stderr)
        return 1
    ctx.sync.request_run()
    print(f"[INFO] provisioned {link.url}; the worker starts the first sync shortly")
    return 0


def _sync(ctx: HubContext) -> int:
    """Run one sync now in this process (the worker's lock keeps it the only one)."""
    from hub.sync.run import sync_once  # the feed engine (numpy): not for `hub web`

    try:
        status = sync_once(ctx)
    except SyncBusy as exc:
        print(f"[ERROR] {exc}", file=sys.stderr)
        return 1
    print(json.dumps(status, indent=2))
    return 0 if status.get("last_run", {}).get("ok") else 1


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
    provision = actions.add_parser("provision", help="link the hub to the community server "
                                   "(checked with a test call before it is stored)")
    provision.add_argument("--url", help="https://host[/path] (default: server_url setting)")
    provision.add_argument("--apikey", help="the household's read API key on the server")
    provision.add_argument("--username", help="server login, exchanged once for the key")
    provision.add_argument("--password", help="prompted for when omitted")
    provision.add_argument("--allow-http", action="store_true",
                           help="allow a plain http URL (the key travels unencrypted)")
    provision.add_argument("--ca-file", help="trust this private CA instead of the system CAs")
    provision.add_argument("--user", help="local user owning the mirrored feeds "
                                          "(default: the first admin)")
    actions.add_parser("sync", help="run one server sync now and print the status")
    update = actions.add_parser("update-server", help="point the update agent at its fleet "
                                "server (hawkBit device API, e.g. goosebit); run as root")
    update.add_argument("--url", required=True, help="https://host[:port][/path]")
    update.add_argument("--device-id", required=True, help="the hub's name on that server")
    update.add_argument("--token", help="its device token (prompted for when omitted)")
    update.add_argument("--tenant", default="DEFAULT", help="hawkBit tenant (default DEFAULT)")
    update.add_argument("--allow-http", action="store_true",
                        help="allow a plain http URL (the token travels unencrypted)")
    admin.set_defaults(run=_admin)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = None
    try:
        config = load_config(args.config)
        ctx = HubContext(config)
        return args.run(args, ctx)
    except ConfigError as exc:
        print(f"[ERROR] {exc}", file=sys.stderr)
        return 2
    except DatabaseError as exc:
        print(f"[ERROR] {exc}", file=sys.stderr)
        if config is not None and config.source is None:
            print(f"[ERROR] no config file was read ({args.config or 'HUB_CONFIG'} = "
                  f"{config_path(args.config)} does not exist), so the built-in defaults "
                  "of the device were used. Point --config or HUB_CONFIG at the hub's TOML "
                  "file, or set HUB_DB_HOST/HUB_DB_PORT/HUB_DB_SOCKET/HUB_DB_USER/"
                  "HUB_DB_PASSWORD/HUB_DB_NAME (on a dev machine, `./build.sh dev` prints "
                  "the settings of its stack).", file=sys.stderr)
        return 2
    except UserError as exc:
        print(f"[ERROR] {exc}", file=sys.stderr)
        return 1
