"""Change reports for the terminal: colour on a TTY, [-deleted-]{+inserted+} markers otherwise."""

from __future__ import annotations

import click

from monitor.clauses import ChangeReport, ClauseChange
from monitor.cli.app import safe_terminal_text

SEVERITY_COLOURS = {"high": "red", "medium": "yellow", "low": "blue", "cosmetic": None}


def print_report(report: ChangeReport, *, colour: bool) -> None:
    """A change report for the terminal: summary, notes, then each clause with words marked."""
    if report.headline:
        click.echo(safe_terminal_text(report.headline))
    click.echo(safe_terminal_text(report.summary) + f" [{report.severity}]")
    for when in report.dates:
        click.echo(f"Date: {safe_terminal_text(when)}")
    for route in report.opt_outs:
        click.echo(f"How to say no: {safe_terminal_text(route)}")
    for note in report.notes:
        click.echo(f"Note: {safe_terminal_text(note)}")
    for clause in report.clauses:
        click.echo("")
        click.echo(_clause_heading(clause, colour=colour))
        if clause.annotation:
            click.echo(f"  {safe_terminal_text(clause.annotation)}")
        click.echo("  " + marked_words(clause, colour=colour))


def _clause_heading(clause: ClauseChange, *, colour: bool) -> str:
    section = safe_terminal_text(" > ".join(clause.section)) or "(top)"
    labels = f" {', '.join(clause.labels)}" if clause.labels else ""
    severity: str = clause.severity
    if colour:
        severity = click.style(severity, fg=SEVERITY_COLOURS.get(severity), bold=True)
    direction = f", {clause.direction}" if clause.labels else ""
    return f"{clause.kind.upper()} in {section} [{severity}{direction}]{labels}"


def marked_words(clause: ClauseChange, *, colour: bool) -> str:
    """The clause with deletions and insertions marked: colour on a terminal, else [-x-]{+y+}."""

    def deleted(text: str) -> str:
        text = safe_terminal_text(text)
        return click.style(text, fg="red", strikethrough=True) if colour else f"[-{text}-]"

    def inserted(text: str) -> str:
        text = safe_terminal_text(text)
        return click.style(text, fg="green", underline=True) if colour else f"{{+{text}+}}"

    if clause.kind == "modified" and clause.words:
        parts = []
        for span in clause.words:
            if span.op == "equal":
                parts.append(safe_terminal_text(span.text))
            elif span.op == "delete":
                parts.append(deleted(span.text))
            else:
                parts.append(inserted(span.text))
        return "".join(parts)
    if clause.kind == "added":
        return inserted(clause.after or "")
    if clause.kind == "removed":
        return deleted(clause.before or "")
    return safe_terminal_text(clause.after or clause.before or "")
