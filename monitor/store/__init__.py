"""The only place that runs database queries, split by area.

- ``store.history``: documents, checks, blobs, versions, changes (the record of what pages said)
- ``store.mail``: subscribers, subscriptions, the delivery outbox
- ``store.scheduling``: claims on due documents and outbox rows, daemon heartbeats

Functions take a SQLAlchemy ``Session`` and never commit: the caller owns the transaction, so a
check, its version, its change and its outbox rows land together or not at all.
"""
