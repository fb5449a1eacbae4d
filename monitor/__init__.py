"""tos-monitor: watches terms of service and privacy policies for content-licence and AI changes."""

__version__ = "0.1.0"
