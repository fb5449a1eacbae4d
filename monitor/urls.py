"""Showing URLs: the credentials a URL may carry (``user:password@``) are never displayed.

A document URL can hold a login (``https://reader:s3cret@intranet.example/terms``). Everything
that shows a URL or a text containing one (CLI output, log lines, emails, web pages, error
messages) passes it through ``mask_credentials`` first; the stored URL keeps them, so fetching
still works.
"""

from __future__ import annotations

import re

__all__ = ["MASK", "mask_credentials"]

MASK = "***"
# scheme://userinfo@ : the userinfo runs to the last "@" before the path, query or fragment
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/?#\s]*@")


def mask_credentials(text: str) -> str:
    """``text`` (a URL, or any text with URLs in it) with every URL's userinfo replaced by ***.

    >>> mask_credentials("fetch of https://bob:hunter2@example.org/tos failed")
    'fetch of https://***@example.org/tos failed'
    """
    return _USERINFO.sub(rf"\g<1>{MASK}@", text)
