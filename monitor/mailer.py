"""The only module touching smtplib: SMTP with STARTTLS or TLS and authentication, or a mail folder.

``Mailer`` keeps one SMTP connection open across messages and reconnects when the server dropped
it. With no ``[mail] host`` configured, messages are written to ``[mail] folder`` as ``.eml`` files,
atomically (temporary file + rename), named after the Message-ID so a re-send overwrites.

Errors come out as :class:`~monitor.errors.DeliveryError`: ``SMTPUnavailable`` (a subclass) when
the server cannot be reached or talked to at all, or will not relay for us (authentication
required, relaying denied: retry later, and don't try the next message now), plain
``DeliveryError`` with ``transient`` set for one message's temporary refusal, and
``transient=False`` for a permanent refusal of that one recipient.
"""

from __future__ import annotations

import os
import re
import smtplib
import ssl
import tempfile
from collections.abc import Mapping
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import parseaddr
from pathlib import Path
from types import TracebackType

from monitor.config import MailConfig
from monitor.errors import DeliveryError


class SMTPUnavailable(DeliveryError):
    """The SMTP server cannot be reached, refused the connection or the login."""


def eml_name(message_id: str) -> str:
    """``<abc.1@example.org>`` -> ``abc.1@example.org.eml`` (safe as a file name)."""
    core = message_id.strip().strip("<>")
    safe = re.sub(r"[^A-Za-z0-9._@+\-]", "_", core)[:200] or "message"
    if safe.startswith("."):
        safe = "_" + safe[1:]
    return safe + ".eml"


class Mailer:
    """Delivers ``EmailMessage`` objects; use as a context manager to close the connection."""

    def __init__(
        self,
        mail: MailConfig,
        *,
        env: Mapping[str, str] = os.environ,
        timeout: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.mail = mail
        self._env = env
        self._timeout = timeout
        self._ssl_context = ssl_context
        self._smtp: smtplib.SMTP | None = None

    @property
    def target(self) -> str:
        if self.mail.host is None:
            return f"mail folder {self.mail.folder}"
        return f"{self.mail.host}:{self.mail.port} ({self.mail.security})"

    def __enter__(self) -> Mailer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is None:
            return
        try:
            smtp.quit()
        except (smtplib.SMTPException, OSError):
            smtp.close()

    # -----------------------------------------------------------------------------------------

    def send(self, message: EmailMessage) -> None:
        """Deliver one message to its ``To`` address (or write it to the mail folder)."""
        if self.mail.host is None:
            self._write_file(message)
            return
        sender = parseaddr(self.mail.sender)[1]
        recipient = parseaddr(str(message["To"]))[1]
        data = message.as_bytes(policy=SMTP)
        for attempt in (1, 2):
            smtp = self._connect()
            try:
                refused = smtp.sendmail(sender, [recipient], data)
            except smtplib.SMTPServerDisconnected as exc:
                self._drop()
                if attempt == 1:
                    continue  # an idle connection timed out: reconnect once
                raise SMTPUnavailable(f"{self.target} disconnected: {exc}") from exc
            except smtplib.SMTPRecipientsRefused as exc:
                code, reply = next(iter(exc.recipients.values()))
                if _server_policy(code, reply):
                    raise SMTPUnavailable(
                        f"{self.target} will not relay to {recipient}: {code} {_reply(reply)} "
                        "(check [mail] username / password_env and the server's relay rules)"
                    ) from exc
                raise DeliveryError(
                    f"{recipient} refused: {code} {_reply(reply)}", transient=400 <= code < 500
                ) from exc
            except smtplib.SMTPSenderRefused as exc:
                self._drop()
                raise SMTPUnavailable(
                    f"{self.target} refused the sender: {exc.smtp_code} {_reply(exc.smtp_error)}"
                ) from exc
            except smtplib.SMTPResponseException as exc:
                self._reset()
                raise DeliveryError(
                    f"{self.target} refused the message: {exc.smtp_code} {_reply(exc.smtp_error)}",
                    transient=400 <= exc.smtp_code < 500,
                ) from exc
            except (smtplib.SMTPException, OSError) as exc:
                self._drop()
                raise SMTPUnavailable(f"{self.target}: {exc}") from exc
            if refused:
                code, reply = next(iter(refused.values()))
                raise DeliveryError(f"{recipient} refused: {code} {_reply(reply)}")
            return

    def probe(self) -> str:
        """Connect, EHLO, STARTTLS and log in as configured, then hang up; no message is sent.

        Returns the server's greeting name; raises SMTPUnavailable naming what failed.
        """
        smtp = self._connect()
        try:
            name = (smtp.ehlo_resp or b"").decode("utf-8", "replace").split("\n")[0].strip()
        finally:
            self.close()
        return name

    def _connect(self) -> smtplib.SMTP:
        if self._smtp is not None:
            return self._smtp
        host = self.mail.host
        assert host is not None
        context = self._ssl_context or ssl.create_default_context()
        try:
            smtp: smtplib.SMTP
            if self.mail.security == "tls":
                smtp = smtplib.SMTP_SSL(
                    host, self.mail.port, timeout=self._timeout, context=context
                )
            else:
                smtp = smtplib.SMTP(host, self.mail.port, timeout=self._timeout)
            try:
                smtp.ehlo()
                if self.mail.security == "starttls":
                    smtp.starttls(context=context)
                    smtp.ehlo()
                if self.mail.username:
                    smtp.login(self.mail.username, self.mail.password(self._env) or "")
            except BaseException:
                smtp.close()
                raise
        except smtplib.SMTPAuthenticationError as exc:
            raise SMTPUnavailable(
                f"{self.target} rejected the login for {self.mail.username}: "
                f"{exc.smtp_code} {_reply(exc.smtp_error)}"
            ) from exc
        except smtplib.SMTPNotSupportedError as exc:
            raise SMTPUnavailable(f"{self.target}: {exc}") from exc
        except (TimeoutError, smtplib.SMTPException, ssl.SSLError, OSError) as exc:
            raise SMTPUnavailable(f"cannot reach {self.target}: {exc}") from exc
        self._smtp = smtp
        return smtp

    def _drop(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            smtp.close()

    def _reset(self) -> None:
        if self._smtp is None:
            return
        try:
            self._smtp.rset()
        except (smtplib.SMTPException, OSError):
            self._drop()

    def _write_file(self, message: EmailMessage) -> None:
        folder = Path(self.mail.folder)
        name = eml_name(str(message["Message-ID"] or "message"))
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".eml", dir=folder)
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(message.as_bytes(policy=SMTP))
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, folder / name)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise SMTPUnavailable(f"cannot write to the mail folder {folder}: {exc}") from exc


_POLICY = re.compile(r"\b5\.7\.\d{1,3}\b|relay|authenticat", re.IGNORECASE)


def _server_policy(code: int, reply: bytes | str) -> bool:
    """A refusal that is about us, not the address: authentication required (530) or relaying
    denied (enhanced status 5.7.x). Our own server says so; the address may be fine."""
    return code == 530 or (500 <= code < 600 and bool(_POLICY.search(_reply(reply))))


def _reply(reply: bytes | str) -> str:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    return " ".join(text.split())[:300]
