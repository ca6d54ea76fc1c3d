"""Sending digests and needs-human notices by e-mail (SMTP) and incoming webhooks, once each.

Each message to an owner on a channel is claimed first as a ``notification_sent`` row whose
unique key is (kind, owner, week or evaluation, channel): a second scheduler, a retried task
or a re-run of ``specfleet digest`` finds the claim and sends nothing. A failed send drops
its claim so the next run tries again; a claim left ``sending`` by a killed process is taken
over after an hour. Webhook URLs and the SMTP password are secrets: no message, log line or
row carries them.
"""

from __future__ import annotations

import datetime as dt
import smtplib
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Literal

import httpx
import structlog
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from specfleet.core.db import NotificationSent, session_scope
from specfleet.core.db.types import utcnow
from specfleet.core.notify.announced import announce_to
from specfleet.core.notify.digest import OwnerDigest, iso_week, owner_digests
from specfleet.core.notify.gather import gather, needs_human_of, opted_out
from specfleet.core.notify.render import (
    Message,
    digest_message,
    needs_human_message,
    webhook_payload,
)
from specfleet.core.secrets import redact_text
from specfleet.core.settings import Settings

Channel = Literal["email", "webhook"]
DeliveryStatus = Literal["sent", "already-sent", "failed", "would-send"]
STALE_CLAIM = dt.timedelta(hours=1)
log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Delivery:
    """What happened to one message to one owner on one channel."""

    owner: str
    channel: Channel
    status: DeliveryStatus
    detail: str = ""


@dataclass(frozen=True)
class DigestRun:
    """The digests of a week and, unless it was a dry run, what sending them did."""

    week: str
    digests: tuple[OwnerDigest, ...]
    deliveries: tuple[Delivery, ...] = field(default=())
    channels: tuple[Channel, ...] = field(default=())


class Channels:
    """The configured ways to reach an owner, from the settings."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def for_owner(self, owner: str) -> tuple[Channel, ...]:
        found: list[Channel] = []
        if self.settings.smtp_host:
            found.append("email")
        if self._webhook(owner) is not None:
            found.append("webhook")
        return tuple(found)

    def send(self, channel: Channel, owner: str, message: Message) -> None:
        """Deliver one message; raises :class:`DeliveryFailed` with a secret-free reason."""
        if channel == "email":
            self._mail(owner, message)
        else:
            self._post(owner, message)

    def _webhook(self, owner: str) -> str | None:
        own = self.settings.notify_owner_webhooks.get(owner)
        chosen = own or self.settings.notify_webhook_url
        return chosen.get_secret_value() if chosen is not None else None

    def _mail(self, owner: str, message: Message) -> None:
        settings = self.settings
        mail = EmailMessage()
        mail["From"] = settings.smtp_from
        mail["To"] = owner
        mail["Subject"] = message.subject
        mail.set_content(message.text)
        assert settings.smtp_host is not None
        try:
            with smtplib.SMTP(
                settings.smtp_host, settings.smtp_port, timeout=settings.smtp_timeout_seconds
            ) as smtp:
                if settings.smtp_starttls:
                    smtp.starttls()
                if settings.smtp_username and settings.smtp_password is not None:
                    smtp.login(settings.smtp_username, settings.smtp_password.get_secret_value())
                smtp.send_message(mail)
        except (smtplib.SMTPException, OSError) as error:
            reason = redact_text(f"{type(error).__name__}: {error}", settings.secret_values())
            raise DeliveryFailed(
                f"SMTP {settings.smtp_host}:{settings.smtp_port}: {reason}"
            ) from error

    def _post(self, owner: str, message: Message) -> None:
        url = self._webhook(owner)
        assert url is not None
        payload = webhook_payload(message, self.settings.notify_webhook_format)
        try:
            response = httpx.post(url, json=payload, timeout=self.settings.smtp_timeout_seconds)
        except httpx.HTTPError as error:
            # the URL is the secret: only the kind of failure is said
            raise DeliveryFailed(
                f"webhook for {owner} unreachable: {type(error).__name__}"
            ) from error
        if response.status_code >= 400:
            raise DeliveryFailed(f"webhook for {owner} answered {response.status_code}")


class DeliveryFailed(Exception):
    """A message could not be delivered; the message says why without any secret."""


def send_digests(
    settings: Settings,
    engine: Engine,
    now: dt.datetime | None = None,
    owner: str | None = None,
    dry_run: bool = False,
    channels: Channels | None = None,
) -> DigestRun:
    """Decide this week's digests and send each at most once per owner and channel."""
    week = iso_week(now or utcnow())
    facts = gather(engine)
    digests = tuple(
        owner_digests(
            facts.products,
            facts.merge_requests,
            facts.needs_human,
            week,
            opted_out=facts.opted_out,
            only_owner=owner,
            automerged=facts.automerged,
        )
    )
    wiring = channels or Channels(settings)
    used = tuple(sorted({c for d in digests for c in wiring.for_owner(d.owner)}))
    if dry_run:
        return DigestRun(week, digests, (), used)
    deliveries: list[Delivery] = []
    for digest in digests:
        deliveries += _deliver_digest(settings, engine, wiring, digest)
    return DigestRun(week, digests, tuple(deliveries), used)


def _deliver_digest(
    settings: Settings, engine: Engine, wiring: Channels, digest: OwnerDigest
) -> list[Delivery]:
    """One owner's digest on each channel, once; its automerges count as told once it went
    out on at least one channel in this run (a digest already sent earlier this week did not
    carry automerges recorded since, so those wait for the next one)."""
    message = digest_message(digest, settings.notify_console_url)
    detail = {
        "subject": message.subject,
        "merge_requests": len(digest.merge_requests),
        "needs_human": len(digest.needs_human),
        "automerged": [item.record_id for item in digest.automerged],
    }
    deliveries = [
        _deliver_once(
            engine, wiring, ("digest", digest.owner, digest.week, channel), message, detail
        )
        for channel in wiring.for_owner(digest.owner)
    ]
    if digest.automerged and any(delivery.status == "sent" for delivery in deliveries):
        told = [item.record_id for item in digest.automerged]
        announce_to(engine, digest.owner, told, digest.week)
    return deliveries


def notify_needs_human(
    settings: Settings, engine: Engine, evaluation_id: int, channels: Channels | None = None
) -> list[Delivery]:
    """Tell the product's owners now that ``evaluation_id`` ended needs-human (once each).

    The pipeline calls this after recording a needs-human outcome; any other outcome, an
    unknown evaluation or opted-out owners send nothing.
    """
    found = needs_human_of(engine, evaluation_id)
    if found is None:
        return []
    product, item = found
    silent = opted_out(engine)
    wiring = channels or Channels(settings)
    deliveries = []
    for owner in product.owners:
        if owner.casefold() in silent:
            continue
        message = needs_human_message(product.name, owner, item, settings.notify_console_url)
        for channel in wiring.for_owner(owner):
            deliveries.append(
                _deliver_once(
                    engine,
                    wiring,
                    ("needs-human", owner, str(evaluation_id), channel),
                    message,
                    {"subject": message.subject, "product": product.id},
                )
            )
    return deliveries


def _deliver_once(
    engine: Engine,
    channels: Channels,
    key: tuple[str, str, str, Channel],
    message: Message,
    detail: dict[str, object],
) -> Delivery:
    """Claim the (kind, owner, key, channel) row, send, then mark it sent (or drop the claim)."""
    kind, owner, which, channel = key
    if not _claim(engine, kind, owner, which, channel, detail):
        return Delivery(owner, channel, "already-sent")
    try:
        channels.send(channel, owner, message)
    except DeliveryFailed as error:
        _release(engine, kind, owner, which, channel)
        log.warning("notification.failed", kind=kind, channel=channel, reason=str(error))
        return Delivery(owner, channel, "failed", str(error))
    _mark_sent(engine, kind, owner, which, channel)
    log.info("notification.sent", kind=kind, channel=channel, key=which)
    return Delivery(owner, channel, "sent")


def _claim(
    engine: Engine, kind: str, owner: str, key: str, channel: str, detail: dict[str, object]
) -> bool:
    try:
        with session_scope(engine) as session:
            session.add(
                NotificationSent(kind=kind, owner=owner, key=key, channel=channel, detail=detail)
            )
        return True
    except IntegrityError:
        pass
    with session_scope(engine) as session:
        row = session.exec(_row(kind, owner, key, channel)).first()
        if row is None or row.state != "sending" or utcnow() - row.at < STALE_CLAIM:
            return False
        row.at = utcnow()  # a claim its sender died holding
        session.add(row)
        return True


def _release(engine: Engine, kind: str, owner: str, key: str, channel: str) -> None:
    with session_scope(engine) as session:
        row = session.exec(_row(kind, owner, key, channel)).first()
        if row is not None and row.state == "sending":
            session.delete(row)


def _mark_sent(engine: Engine, kind: str, owner: str, key: str, channel: str) -> None:
    with session_scope(engine) as session:
        row = session.exec(_row(kind, owner, key, channel)).first()
        if row is not None:
            row.state = "sent"
            row.at = utcnow()
            session.add(row)


def _row(kind: str, owner: str, key: str, channel: str):  # type: ignore[no-untyped-def]
    return select(NotificationSent).where(
        NotificationSent.kind == kind,
        NotificationSent.owner == owner,
        NotificationSent.key == key,
        NotificationSent.channel == channel,
    )


def set_opt_out(engine: Engine, owner: str, actor: str, out: bool) -> bool:
    """Record (or withdraw) an owner's opt-out; returns whether anything changed."""
    from specfleet.core.db import AuditEntry, NotificationOptOut

    with session_scope(engine) as session:
        row = session.get(NotificationOptOut, owner.casefold())
        if out == (row is not None):
            return False
        if out:
            session.add(NotificationOptOut(owner=owner.casefold(), by=actor))
        else:
            session.delete(row)
        session.add(
            AuditEntry(
                actor=actor,
                action="notifications.opt-out" if out else "notifications.opt-in",
                subject_type="owner",
                subject_id=owner.casefold(),
            )
        )
    return True


__all__: Sequence[str] = [
    "Channels",
    "Delivery",
    "DeliveryFailed",
    "DigestRun",
    "notify_needs_human",
    "send_digests",
    "set_opt_out",
]
