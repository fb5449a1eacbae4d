"""``tosmon`` with each changed page analysed in the event loop's thread, for ``cProfile``.

cProfile sees only the thread it was started in, and the tracker analyses a changed page (diff,
classification, report) in a worker thread (``asyncio.to_thread``): profiled as it runs, a
cycle's reports do not show at all. Here ``asyncio.to_thread`` calls the function at once, so the
profile holds the whole cycle. Only for profiling (``check_cycle.py --profile``): the event loop
waits while a page is analysed.

    python -m cProfile -o warm.prof bench/profile_inline.py --config tosmon.toml check --no-send
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any


async def _at_once(func: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    return func(*args, **kwargs)


asyncio.to_thread = _at_once

if __name__ == "__main__":
    from monitor.cli import main

    main()
