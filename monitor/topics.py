"""Topic labels and their groups, as a subscription or a ``[[notify]]`` target names them.

The labels and groups come from the taxonomy (``monitor/taxonomy.toml``); a filter may name a
label (``AI_TRAINING_ON_USER_DATA``) or a whole group (``ai``, ``content_license``).
"""

from __future__ import annotations

from collections.abc import Iterable

from monitor.errors import SubscriptionError

DEFAULT_GROUPS: tuple[str, ...] = ("ai", "content_license")
"""What a filter covers when it names no topic."""


def topic_groups() -> dict[str, tuple[str, ...]]:
    """Topic group -> its labels, from the taxonomy (monitor/taxonomy.toml)."""
    from monitor.classify import load_taxonomy  # the taxonomy loads on first use

    return dict(load_taxonomy().groups)


def default_topics() -> tuple[str, ...]:
    groups = topic_groups()
    return tuple(label for group in DEFAULT_GROUPS for label in groups.get(group, ()))


def expand_topics(values: Iterable[str]) -> tuple[str, ...]:
    """Labels and group names (``ai``, ``content_license``, ...) -> a sorted tuple of labels.

    Unknown names are refused with the list of what is known.
    """
    groups = topic_groups()
    known = {label for labels in groups.values() for label in labels}
    result: set[str] = set()
    for raw in values:
        value = raw.strip()
        if value.lower() in groups:
            result.update(groups[value.lower()])
        elif value.upper() in known:
            result.add(value.upper())
        else:
            raise SubscriptionError(
                f"unknown topic {raw!r}; use a group ({', '.join(sorted(groups))}) "
                f"or a label such as {sorted(known)[0]}"
            )
    return tuple(sorted(result))
