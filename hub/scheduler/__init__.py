"""Demand-shaper scheduler: signals, the slot optimiser, schedule plans (see README.md).

A models-layer library: no HTTP, no database, no MQTT. The runtime loop feeds it profiles
and schedule definitions and switches devices according to the plans it returns.
"""

from .errors import SchedulerError
from .optimise import Choice, Window, choose, total_signal
from .plan import (
    Occurrence,
    Plan,
    ScheduleDefinition,
    advance,
    explain,
    new_occurrence,
    next_ready_by,
    plan,
    plan_run,
    roll_over,
    seconds_in_windows,
)
from .signal import OffPeakTariffSource, ProfileSource, Signal, SignalSource

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
