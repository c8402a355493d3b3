"""CydYnni Hub: meter data, in-home display and smart-device control for a home energy hub."""

__version__ = "0.1.0"
