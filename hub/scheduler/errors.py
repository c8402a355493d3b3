"""Exceptions of the scheduler library: one base class, one subclass per failure."""


class SchedulerError(ValueError):
    """Base class: anything the scheduler refuses, with a message saying what to fix."""


class InvalidSignal(SchedulerError):
    """A signal profile is malformed (see the subclasses for which rule it broke)."""


class NotAnObject(InvalidSignal):
    """The profile is not a JSON object with start, interval and values."""


class InvalidStart(InvalidSignal):
    """`start` is missing, not an integer unix time, or outside 2000..2100."""


class InvalidInterval(InvalidSignal):
    """`interval` is missing, not an integer, or outside the allowed range."""


class InvalidValues(InvalidSignal):
    """`values` is not a list, or an element is not a number (or null/NaN for a gap)."""


class EmptySignal(InvalidSignal):
    """The profile has no values, or none that is known (all gaps)."""


class SignalTooLong(InvalidSignal):
    """The profile has more slots, or spans more time, than any real source sends."""


class LengthMismatch(InvalidSignal):
    """The number of values disagrees with `end` or with the length the source promised."""


class NoSignal(SchedulerError):
    """A source has no (valid) profile yet."""


class InvalidRequest(SchedulerError):
    """A scheduling request is malformed: period, times, flags."""


class NoTimeLeft(SchedulerError):
    """There is no time between `now` and the ready-by time (inside the horizon)."""


class ReadyByPassed(SchedulerError):
    """A one-off schedule's ready-by time is already in the past."""


class InvalidSchedule(SchedulerError):
    """A schedule definition is malformed (time format, weekdays, mode)."""
