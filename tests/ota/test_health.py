"""The trial verdict's timing: wait for units that are still starting, not for one systemd
has given up on. (The checks themselves run against real services in the QEMU journey.)"""

from __future__ import annotations

from pathlib import Path

from ota.agent import health
from ota.agent.config import AgentConfig


def config(deadline: float) -> AgentConfig:
    return AgentConfig(server_url="http://127.0.0.1:1/", tenant="DEFAULT", controller_id="t",
                       token="t", state_dir=Path("/nonexistent"), health_deadline=deadline)


def run(answers: list[list[str]], deadline: float = 3600) -> tuple[list[str], int]:
    calls = iter(answers)
    slept: list[float] = []
    verdict = health.wait_healthy(config(deadline), sleep=slept.append,
                                  check=lambda cfg: next(calls))
    return verdict, len(slept)


def test_starting_units_are_waited_for_until_healthy() -> None:
    verdict, waits = run([["cydynni-hub-web.service is activating"],
                          ["hub web does not answer: refused"], []])
    assert verdict == [] and waits == 2


def test_a_failed_unit_ends_the_wait_at_once() -> None:
    verdict, waits = run([["cydynni-hub-web.service is activating"],
                          ["cydynni-hub-web.service is failed", "hub web does not answer"]])
    assert verdict[0] == "cydynni-hub-web.service is failed" and waits == 1


def test_the_deadline_gives_the_last_problems() -> None:
    verdict, waits = run([["redis-server.service is activating"]] * 3, deadline=0)
    assert verdict == ["redis-server.service is activating"] and waits == 0
