"""`python3 -m ota.agent run|commit|status` (the units call these; see ota/README.md).

    run      poll the update server for ever (cydynni-ota-agent.service)
    commit   once per boot: judge a trial boot, or confirm a normal one (cydynni-ota-commit)
    status   print status.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from ota.agent import config as agent_config
from ota.agent import statefile
from ota.agent.core import Agent
from ota.errors import OtaError

DEFAULT_CONFIG = Path("/data/ota/agent.json")


def load(path: Path, *, required: bool, args: argparse.Namespace | None = None
         ) -> agent_config.AgentConfig:
    overrides: dict = {"state_dir": path.parent}
    if args is not None:
        overrides.update({k: v for k, v in (("keyring", args.keyring),
                                            ("system_conf", args.system_conf),
                                            ("hub_health_url", args.health_url)) if v})
    try:
        return agent_config.load(path, **overrides)
    except agent_config.ConfigError:
        if required:
            raise
        # Judging a boot needs no server: report later, once one is configured.
        return agent_config.AgentConfig(server_url="http://127.0.0.1", tenant="DEFAULT",
                                        controller_id="unconfigured", token="none", **overrides)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ota.agent", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["run", "commit", "status", "once"])
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    # Paths of the trust root and identity: only the unit (root) sets these, never /data.
    parser.add_argument("--keyring", type=Path, help="default /etc/rauc/keyring.pem")
    parser.add_argument("--system-conf", type=Path, help="default /etc/rauc/system.conf")
    parser.add_argument("--health-url", help="default http://127.0.0.1:80/health.json")
    args = parser.parse_args(argv)
    if args.command == "status":
        print(json.dumps(statefile.read_json(args.config.parent / "status.json") or {}, indent=1))
        return 0
    if args.command == "commit":
        return Agent(load(args.config, required=False, args=args)).commit()
    while True:
        try:
            cfg = load(args.config, required=True, args=args)
        except agent_config.ConfigError as exc:
            if args.command == "once":
                print(f"ota.agent: {exc}", file=sys.stderr)
                return 1
            statefile.write_json(args.config.parent / "status.json",
                                 {"state": "unconfigured", "message": str(exc)}, mode=0o644)
            time.sleep(60)
            continue
        agent = Agent(cfg)
        try:
            if args.command == "once":
                print(f"next poll in {agent.cycle():.0f} s")
                return 0
            agent.run_forever()
        except (OtaError, RuntimeError) as exc:
            print(f"ota.agent: {exc}", file=sys.stderr)
            return 1


if __name__ == "__main__":
    sys.exit(main())
