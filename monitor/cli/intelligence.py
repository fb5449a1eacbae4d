"""tosmon commands: intelligence."""
