"""Exceptions of the devices package: one base class, one subclass per failure."""


class DeviceError(Exception):
    """Base of every devices failure; the message says what went wrong and what to do."""


class BrokerAdminError(DeviceError):
    """The broker's dynamic-security API could not be reached or refused a command."""


class UnknownDevice(DeviceError):
    """No device with that id (or topic) is known."""


class UnknownDeviceType(DeviceError):
    """A device announced a type the hub has no adapter or template for."""


class DeviceMessageError(DeviceError):
    """A device sent a payload that does not follow its firmware's protocol."""


class PairingError(DeviceError):
    """A pairing request or decision cannot be honoured (expired, unknown, rate-limited)."""


class PairingRateLimited(PairingError):
    """Too many auth requests from one address, or in total."""


class NoPendingRequest(PairingError):
    """Allow/deny named an address that has no pending auth request."""
