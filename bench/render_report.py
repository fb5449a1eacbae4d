"""Render a sample change report to HTML (and a PNG screenshot when Chromium is installed).

    .venv/bin/python bench/render_report.py [OUT_DIR]      (default: /tmp/tosmon-report)

Writes report.html, report.txt, digest.html and, with /usr/bin/chromium, report.png,
report-narrow.png (a phone-width view) and report-dark.png (forced dark mode), so a person
can look at the email as a reader would.
Also prints how long rendering takes (median of 200 renders).
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from monitor.render import ChangeView, ClauseView, WordView, render_change, render_digest

T0 = datetime(2025, 6, 16, 9, 30, tzinfo=UTC)


def sample() -> ChangeView:
    return ChangeView(
        change_id=42,
        service="Instagram",
        document_id="instagram/terms-of-use",
        document_type="Terms of Use",
        url="https://help.instagram.com/581066165581870",
        detected_at=T0,
        summary=(
            "Instagram's Terms of Use now say your content may be used to develop and improve "
            "AI, and the licence you grant became sub-licensable. 2 clauses changed in ways "
            "that widen the company's rights."
        ),
        severity="high",
        clauses=(
            ClauseView(
                kind="modified",
                section=("Permissions You Give Us",),
                before=(
                    "We do not claim ownership of your content, but you grant us a "
                    "non-exclusive, royalty-free, transferable, worldwide license to host, "
                    "use, distribute, modify, run, copy, publicly perform or display, "
                    "translate, and create derivative works of your content."
                ),
                after=(
                    "We do not claim ownership of your content, but you grant us a "
                    "non-exclusive, royalty-free, transferable, sub-licensable, worldwide "
                    "license to host, use, distribute, modify, run, copy, publicly perform or "
                    "display, translate, and create derivative works of your content, "
                    "including to develop and improve artificial intelligence."
                ),
                words=(
                    WordView(
                        "equal",
                        "We do not claim ownership of your content, but you grant us a "
                        "non-exclusive, royalty-free, transferable, ",
                    ),
                    WordView("insert", "sub-licensable, "),
                    WordView(
                        "equal",
                        "worldwide license to host, use, distribute, modify, run, copy, "
                        "publicly perform or display, translate, and create derivative works "
                        "of your content",
                    ),
                    WordView("delete", "."),
                    WordView(
                        "insert", ", including to develop and improve artificial intelligence."
                    ),
                ),
                labels=("LICENSE_SUBLICENSE_TRANSFER", "AI_TRAINING_ON_USER_DATA"),
                direction="expands",
                severity="high",
                annotation=(
                    "A sublicensable licence lets the platform pass your content on to other "
                    "companies (including AI developers) without asking you again."
                ),
            ),
            ClauseView(
                kind="removed",
                section=("Your Commitments", "How We Use Your Content"),
                before=(
                    "We will not use the content you share to train generative AI models "
                    "without your consent."
                ),
                after=None,
                labels=("AI_NO_TRAINING_COMMITMENT",),
                direction="expands",
                severity="high",
                annotation=(
                    "These promises are your main protection; if one quietly disappears, the "
                    "company has freed itself to train on your work."
                ),
            ),
            ClauseView(
                kind="added",
                section=("Your Choices",),
                before=None,
                after=(
                    "You can object to the use of your information for AI at any time in "
                    "Settings <script>alert('page text stays text')</script>."
                ),
                labels=("AI_OPT_OUT_CONTROL",),
                direction="narrows",
                severity="medium",
                annotation="It tells you whether you can say no, and how hard it is.",
            ),
            ClauseView(
                kind="modified",
                section=("Intro",),
                before="Welcome to Instagram!",
                after="Welcome to Instagram.",
                severity="cosmetic",
            ),
        ),
        notes=("The page announces terms that take effect on 26 June 2025.",),
    )


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    view = sample()
    email = render_change(
        view,
        base_url="https://tos.example.org",
        unsubscribe_url="https://tos.example.org/unsubscribe?token=sample",
    )
    (out / "report.html").write_text(email.html, encoding="utf-8")
    (out / "report.txt").write_text(f"Subject: {email.subject}\n\n{email.text}", encoding="utf-8")
    digest = render_digest(
        [view, view],
        cadence="daily",
        period_end=T0,
        base_url="https://tos.example.org",
        unsubscribe_url="https://tos.example.org/unsubscribe?token=sample",
    )
    (out / "digest.html").write_text(digest.html, encoding="utf-8")
    print(f"subject: {email.subject}")
    print(f"html: {len(email.html):,} bytes, text: {len(email.text):,} bytes")

    timings = []
    for _ in range(200):
        start = time.perf_counter()
        render_change(view, base_url="https://tos.example.org", unsubscribe_url=None)
        timings.append(time.perf_counter() - start)
    print(f"render_change: median {statistics.median(timings) * 1000:.2f} ms")

    chromium = shutil.which("chromium") or (
        "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
    )
    if chromium is None:
        print("no chromium: skipping the screenshots")
        return
    shots = (
        ("report.png", "900,1900", []),
        ("report-narrow.png", "420,2600", []),
        # what clients that invert colours (auto dark mode) do to the email
        ("report-dark.png", "900,1900", ["--blink-settings=forceDarkModeEnabled=true"]),
    )
    for name, size, extra in shots:
        subprocess.run(
            [
                chromium,
                *extra,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                f"--screenshot={out / name}",
                f"--window-size={size}",
                (out / "report.html").as_uri(),
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
        print(f"screenshot: {out / name}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("/tmp/tosmon-report"))
