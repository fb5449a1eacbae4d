"""tosmon commands: mail."""
