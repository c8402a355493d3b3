"""Demand-shaper scheduler: signals, the slot optimiser, schedule plans (see README.md).

A models-layer library: no HTTP, no database, no MQTT. The runtime loop feeds it profiles
and schedule definitions and switches devices according to the plans it returns.
"""

from importlib import import_module

# Submodule of each public name, imported on first use (PEP 562): `from hub.scheduler.errors
# import …` or the plan's data must not load the optimiser's numpy (issue 12).
_HOME = {
    "Choice": "optimise", "Window": "window", "choose": "optimise", "total_signal": "optimise",
    "SchedulerError": "errors",
    "OffPeakTariffSource": "signal", "ProfileSource": "signal", "Signal": "signal",
    "SignalSource": "signal",
    **dict.fromkeys(("Occurrence", "Plan", "ScheduleDefinition", "advance", "explain",
                     "new_occurrence", "next_ready_by", "plan", "plan_run", "roll_over",
                     "seconds_in_windows"), "plan"),
}


def __getattr__(name: str) -> object:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f".{_HOME[name]}", __name__), name)


__all__ = [
    "Choice",
    "Occurrence",
    "OffPeakTariffSource",
    "Plan",
    "ProfileSource",
    "ScheduleDefinition",
    "SchedulerError",
    "Signal",
    "SignalSource",
    "Window",
    "advance",
    "choose",
    "explain",
    "new_occurrence",
    "next_ready_by",
    "plan",
    "plan_run",
    "roll_over",
    "seconds_in_windows",
    "total_signal",
]
