"""tosmon commands: daemon."""
