"""Weekly digests and needs-human notices, delivered to a real SMTP server and webhook receiver."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from email.message import Message

import pytest
from sqlalchemy import Engine
from sqlmodel import select

from specfleet.core.db import (
    AutomergeRecord,
    Evaluation,
    MergeRequest,
    NotificationSent,
    Product,
    Proposal,
    session_scope,
)
from specfleet.core.notify.digest import (
    Automerged,
    NeedsHuman,
    ProductFacts,
    WaitingMergeRequest,
    owner_digests,
    rules_from_description,
    verdict_of,
)
from specfleet.core.notify.render import digest_message, webhook_payload
from specfleet.core.notify.send import notify_needs_human, send_digests, set_opt_out
from specfleet.core.settings import Settings
from tests.support.receivers import Mailbox, WebhookInbox, smtp_server, webhook_receiver

MONDAY = dt.datetime(2026, 12, 7, 8, 0, tzinfo=dt.UTC)
MERGED_COMMIT = "4f1c2d3e5a6b7c8d9e0f4f1c2d3e5a6b7c8d9e0f"
ANA, RAJ, LEE = "ana@example.com", "raj@example.com", "lee@example.com"
DESCRIPTION = """## Why now

| | |
| --- | --- |

## Policy rules new since the last merged proposal

No proposal of this product was merged yet, so every rule that applies is new.

| rule | severity | kind | title | this change |
| --- | --- | --- | --- | --- |
| SEC-001 | high | dependency | No known vulnerable dependency | resolves its findings |
| PII-002 | medium | semgrep | No e-mail addresses in logs |  |

## Dependency changes
"""


def body_of(mail: Message) -> str:
    """The text as the owner reads it (the transfer encoding undone)."""
    payload = mail.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload.decode()


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    with smtp_server() as server:
        yield server


@pytest.fixture
def inbox() -> Iterator[WebhookInbox]:
    with webhook_receiver() as receiver:
        yield receiver


@pytest.fixture
def settings(tmp_path, mailbox: Mailbox, inbox: WebhookInbox) -> Settings:
    return Settings(
        home=tmp_path,
        smtp_host=mailbox.host,
        smtp_port=mailbox.port,
        notify_webhook_url=f"{inbox.url}/hooks/fleet",
        notify_owner_webhooks={RAJ: f"{inbox.url}/hooks/raj"},
        notify_webhook_format="slack",
        notify_console_url="https://specfleet.example.com",
    )


def add_product(engine: Engine, product_id: str, owners: list[str]) -> None:
    with session_scope(engine) as session:
        session.add(
            Product(
                id=product_id, name=product_id.title(), repo_url=f"/r/{product_id}", owners=owners
            )
        )


def add_merge_request(engine: Engine, product_id: str, title: str, summary: dict | None) -> None:
    with session_scope(engine) as session:
        evaluation = Evaluation(
            product_id=product_id,
            window="2026-W49",
            trigger="policy",
            status="done",
            outcome="proposed",
            summary=summary,
            finished_at=MONDAY - dt.timedelta(days=2),
        )
        session.add(evaluation)
        session.flush()
        proposal = Proposal(
            product_id=product_id, evaluation_id=evaluation.id, key=f"k-{product_id}", title=title
        )
        session.add(proposal)
        session.flush()
        session.add(
            MergeRequest(
                product_id=product_id,
                proposal_id=proposal.id,
                forge="github",
                forge_ref="1",
                url=f"https://github.example.com/data/{product_id}/pull/1",
                title=title,
                description=DESCRIPTION,
                state="open",
            )
        )


def add_needs_human(engine: Engine, product_id: str, reason: str) -> int:
    with session_scope(engine) as session:
        evaluation = Evaluation(
            product_id=product_id,
            window="2026-W49",
            trigger="weekly",
            status="done",
            outcome="needs-human",
            summary={"reason": reason},
            finished_at=MONDAY - dt.timedelta(days=1),
        )
        session.add(evaluation)
        session.flush()
        return evaluation.id or 0


def add_automerge(engine: Engine, product_id: str, title: str) -> int:
    """A merge request specfleet merged on the owner's opt-in; returns its id."""
    with session_scope(engine) as session:
        request = MergeRequest(
            product_id=product_id,
            forge="local",
            forge_ref="3",
            title=title,
            state="merged",
            merged_at=MONDAY - dt.timedelta(days=3),
        )
        session.add(request)
        session.flush()
        session.add(
            AutomergeRecord(
                product_id=product_id,
                merge_request_id=request.id or 0,
                level="security-patch",
                title=title,
                merged_at=MONDAY - dt.timedelta(days=3),
                merged_commit=MERGED_COMMIT,
                reasons=["opted in at security-patch", "verified green"],
            )
        )
        return request.id or 0


def announced(engine: Engine) -> list[dt.datetime | None]:
    with session_scope(engine) as session:
        return [row.announced_at for row in session.exec(select(AutomergeRecord)).all()]


@pytest.fixture
def fleet(engine: Engine) -> Engine:
    """Ana owns orders (one verified MR) and invoices (needs-human); Raj owns payments (one
    MR); Lee owns ledger, where nothing waits."""
    add_product(engine, "orders", [ANA])
    add_product(engine, "invoices", [ANA])
    add_product(engine, "payments", [RAJ])
    add_product(engine, "ledger", [LEE])
    add_merge_request(
        engine, "orders", "Upgrade pandas to 2.2.3", {"verification": "**Verification: passed.**"}
    )
    add_merge_request(engine, "payments", "Upgrade requests to 2.32.3", None)
    add_needs_human(
        engine, "invoices", "no verified candidate within the rounds and budget: tests fail"
    )
    return engine


def test_digest_for_two_owners_arrives_by_mail_and_webhook(settings, fleet, mailbox, inbox):
    """Ana and Raj get their MRs by e-mail and webhook; Lee, with nothing waiting, gets nothing."""
    run = send_digests(settings, fleet, now=MONDAY)
    assert [digest.owner for digest in run.digests] == [ANA, RAJ]
    assert {(d.owner, d.channel, d.status) for d in run.deliveries} == {
        (ANA, "email", "sent"),
        (ANA, "webhook", "sent"),
        (RAJ, "email", "sent"),
        (RAJ, "webhook", "sent"),
    }
    assert mailbox.to(LEE) == []
    (ana,) = mailbox.to(ANA)
    body = body_of(ana)
    assert "2026-W50" in ana["Subject"] and "1 merge request to review" in ana["Subject"]
    assert "Upgrade pandas to 2.2.3 [verified]" in body
    assert "https://github.example.com/data/orders/pull/1" in body
    assert "SEC-001 (high) No known vulnerable dependency" in body
    assert "Invoices: no verified candidate" in body and "What to do:" in body
    assert "https://specfleet.example.com/evaluations/" in body
    assert "Upgrade requests" not in body  # Raj's product
    (raj,) = mailbox.to(RAJ)
    assert "Upgrade requests to 2.32.3" in body_of(raj) and "pandas" not in body_of(raj)
    (fleet_post,) = inbox.at("/hooks/fleet")
    assert (
        ANA in fleet_post["text"]
        and "<https://github.example.com/data/orders/pull/1|" in (fleet_post["text"])
    )
    (raj_post,) = inbox.at("/hooks/raj")  # Raj's own webhook replaces the shared one
    assert "payments" in raj_post["text"].lower() and "orders" not in raj_post["text"].lower()


def test_a_digest_is_sent_once_per_week(settings, fleet, mailbox, inbox):
    """A second run in the same week (another scheduler, a retry) sends nothing more."""
    send_digests(settings, fleet, now=MONDAY)
    again = send_digests(settings, fleet, now=MONDAY + dt.timedelta(hours=3))
    assert {d.status for d in again.deliveries} == {"already-sent"}
    assert len(mailbox.received) == 2 and len(inbox.posts) == 2
    next_week = send_digests(settings, fleet, now=MONDAY + dt.timedelta(days=7))
    assert {d.status for d in next_week.deliveries} == {"sent"}


def test_a_failed_webhook_is_retried_by_the_next_run(settings, fleet, mailbox, inbox):
    """A receiver answering 500 fails that delivery only; the next run sends it, mail once."""
    inbox.status = 500
    first = send_digests(settings, fleet, now=MONDAY)
    failed = [d for d in first.deliveries if d.status == "failed"]
    assert {d.channel for d in failed} == {"webhook"} and "answered 500" in failed[0].detail
    assert inbox.url not in failed[0].detail  # the URL is a secret
    inbox.status = 200
    second = send_digests(settings, fleet, now=MONDAY)
    assert {(d.channel, d.status) for d in second.deliveries} == {
        ("email", "already-sent"),
        ("webhook", "sent"),
    }
    assert len(mailbox.received) == 2


def test_opted_out_owner_gets_nothing_and_dry_run_sends_nothing(settings, fleet, mailbox, inbox):
    """An owner's opt-out silences their digest; a dry run decides but does not send."""
    assert set_opt_out(fleet, RAJ, "platform", out=True)
    dry = send_digests(settings, fleet, now=MONDAY, dry_run=True)
    assert [d.owner for d in dry.digests] == [ANA] and dry.deliveries == ()
    assert mailbox.received == [] and inbox.posts == []
    with session_scope(fleet) as session:
        assert session.exec(select(NotificationSent)).all() == []
    send_digests(settings, fleet, now=MONDAY)
    assert mailbox.to(RAJ) == [] and len(mailbox.to(ANA)) == 1


def test_needs_human_notice_goes_out_at_once_and_once(settings, engine, mailbox, inbox):
    """The pipeline's hook tells the owners right away; calling it again sends nothing."""
    add_product(engine, "invoices", [ANA, RAJ])
    evaluation = add_needs_human(engine, "invoices", "the LLM budget of this window is spent")
    sent = notify_needs_human(settings, engine, evaluation)
    assert {(d.owner, d.status) for d in sent} == {(ANA, "sent"), (RAJ, "sent")}
    (mail,) = mailbox.to(ANA)
    assert mail["Subject"] == "specfleet: Invoices needs you"
    assert "budget" in body_of(mail) and "raise budget_calls" in body_of(mail)
    assert {d.status for d in notify_needs_human(settings, engine, evaluation)} == {"already-sent"}
    assert len(mailbox.received) == 2


def test_whom_the_digest_concerns_is_a_pure_decision():
    """Verified MRs come first; owners with nothing waiting or opted out are left out."""
    products = [
        ProductFacts("a", "A", (ANA,)),
        ProductFacts("b", "B", (ANA, RAJ)),
        ProductFacts("c", "C", (LEE,)),
    ]
    requests = [
        WaitingMergeRequest("a", "draft one", "u1", "draft"),
        WaitingMergeRequest("b", "ready one", "u2", "verified"),
    ]
    stuck = [NeedsHuman("b", 7, "tests fail", "fix by hand")]
    digests = owner_digests(products, requests, stuck, "2026-W50", opted_out=[RAJ.upper()])
    assert [d.owner for d in digests] == [ANA]
    assert [r.title for r in digests[0].merge_requests] == ["ready one", "draft one"]
    assert owner_digests(products, requests, stuck, "2026-W50", only_owner=RAJ)[0].owner == RAJ


def test_rules_and_verdicts_are_read_from_what_specfleet_wrote():
    """The new-rules table of the MR description gives the rules; a failed verification shows."""
    rules = rules_from_description(DESCRIPTION)
    assert [(r.id, r.severity) for r in rules] == [("SEC-001", "high"), ("PII-002", "medium")]
    assert rules_from_description("no table here") == ()
    assert verdict_of(True, None) == "draft"
    assert verdict_of(False, "**Verification: failed.** tests") == "not verified"
    assert verdict_of(False, None) == "verified"


def test_webhook_payloads_follow_each_service():
    """Slack gets mrkdwn links, Mattermost markdown, Teams an Adaptive Card."""
    digest = owner_digests(
        [ProductFacts("a", "A", (ANA,))],
        [WaitingMergeRequest("a", "Fix", "https://x/1", "verified")],
        [],
        "2026-W50",
    )[0]
    message = digest_message(digest)
    assert "<https://x/1|Fix>" in webhook_payload(message, "slack")["text"]
    assert "[Fix](https://x/1)" in webhook_payload(message, "mattermost")["text"]
    card = webhook_payload(message, "teams")["attachments"][0]
    assert card["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert any("[Fix](https://x/1)" in block["text"] for block in card["content"]["body"])


def test_webhook_urls_never_reach_the_logs(tmp_path, fleet, mailbox, inbox):
    """A webhook URL carries its channel's token: service logs (httpx's too) never show it."""
    import io

    from specfleet.core.log import configure_service_logging

    secret_path = "/services/T0001/B0002/Xq9secretWebhookTokenZ"
    settings = Settings(
        home=tmp_path, notify_webhook_url=f"{inbox.url}{secret_path}", log_level="debug"
    )
    stream = io.StringIO()
    configure_service_logging(settings, "worker", stream=stream)
    inbox.status = 404
    failed = send_digests(settings, fleet, now=MONDAY)
    inbox.status = 200
    sent = send_digests(settings, fleet, now=MONDAY)
    assert {d.status for d in failed.deliveries} == {"failed"}
    assert {d.status for d in sent.deliveries} == {"sent"}
    assert len(inbox.at(secret_path)) == 2
    logged = stream.getvalue()
    assert "notification.sent" in logged and "HTTP Request: POST" in logged  # httpx logs
    assert "Xq9secretWebhookTokenZ" not in logged


def test_a_claim_left_by_a_dead_sender_is_taken_over_after_an_hour(settings, fleet, mailbox):
    """A 'sending' row younger than an hour blocks a second sender; an older one does not."""
    with session_scope(fleet) as session:
        for owner, age in ((ANA, dt.timedelta(minutes=5)), (RAJ, dt.timedelta(hours=2))):
            session.add(
                NotificationSent(
                    kind="digest",
                    owner=owner,
                    key="2026-W50",
                    channel="email",
                    at=dt.datetime.now(dt.UTC) - age,
                )
            )
    run = send_digests(settings, fleet, now=MONDAY)
    by_mail = {d.owner: d.status for d in run.deliveries if d.channel == "email"}
    assert by_mail == {ANA: "already-sent", RAJ: "sent"}
    assert [rcpt for rcpt, _ in mailbox.received] == [[RAJ]]


def test_an_automerge_is_announced_once_with_its_revert(settings, fleet, mailbox, inbox):
    """Lee's only news is an automerge of ledger: Lee gets a digest naming it with the console's
    Revert link and the revert command; Ana and Raj do not; next week's digest does not repeat it."""
    merged = add_automerge(fleet, "ledger", "Upgrade pyarrow to 14.0.1")
    run = send_digests(settings, fleet, now=MONDAY)
    assert [digest.owner for digest in run.digests] == [ANA, LEE, RAJ]
    (lee,) = mailbox.to(LEE)
    body = body_of(lee)
    assert "1 merged by automerge" in lee["Subject"]
    assert f"Ledger: !{merged} Upgrade pyarrow to 14.0.1" in body
    assert "under automerge level security-patch, commit 4f1c2d3e5a6b" in body
    assert f"https://specfleet.example.com/merge-requests/{merged}" in body
    assert f"specfleet mr revert {merged}" in body
    for other in (ANA, RAJ):
        (mail,) = mailbox.to(other)
        assert "automerge" not in mail["Subject"] and "pyarrow" not in body_of(mail)
    lee_post = next(p for p in inbox.at("/hooks/fleet") if LEE in p["text"])
    assert f"<https://specfleet.example.com/merge-requests/{merged}|Revert>" in lee_post["text"]
    assert f"`specfleet mr revert {merged}`" in lee_post["text"]
    assert all(when is not None for when in announced(fleet))

    next_week = send_digests(settings, fleet, now=MONDAY + dt.timedelta(days=7))
    assert LEE not in [digest.owner for digest in next_week.digests]
    assert len(mailbox.to(LEE)) == 1


def test_an_automerge_waits_until_the_owners_digest_went_out(tmp_path, fleet, inbox):
    """A digest that reached no channel tells nothing: the retry carries the automerge; a
    digest already sent this week does not count for an automerge recorded after it."""
    settings = Settings(home=tmp_path, notify_webhook_url=f"{inbox.url}/hooks/fleet")
    merged = add_automerge(fleet, "ledger", "Upgrade pyarrow to 14.0.1")
    inbox.status = 500
    failed = send_digests(settings, fleet, now=MONDAY)
    assert {(d.owner, d.status) for d in failed.deliveries if d.owner == LEE} == {(LEE, "failed")}
    assert announced(fleet) == [None]
    inbox.status = 200
    send_digests(settings, fleet, now=MONDAY)
    (lee_post,) = [p for p in inbox.at("/hooks/fleet") if LEE in p["text"]]
    assert f"specfleet mr revert {merged}" in lee_post["text"]
    assert announced(fleet)[0] is not None

    later = add_automerge(fleet, "orders", "Upgrade pandas to 2.2.4")  # after Ana's digest
    same_week = send_digests(settings, fleet, now=MONDAY + dt.timedelta(days=1))
    assert {d.status for d in same_week.deliveries if d.owner == ANA} == {"already-sent"}
    next_week = send_digests(settings, fleet, now=MONDAY + dt.timedelta(days=7))
    ana_post = [p for p in inbox.at("/hooks/fleet") if ANA in p["text"]][-1]
    assert f"specfleet mr revert {later}" in ana_post["text"]
    assert [d.owner for d in next_week.digests if d.automerged] == [ANA]


def test_an_automerge_is_announced_to_each_owner_of_its_product(settings, engine, mailbox):
    """Both owners of a shared product are told once each; an opted-out owner is not waited for."""
    add_product(engine, "shared", [ANA, RAJ, LEE])
    assert set_opt_out(engine, LEE, "platform", out=True)
    merged = add_automerge(engine, "shared", "Upgrade urllib3 to 2.2.2")
    send_digests(settings, engine, now=MONDAY, owner=ANA)
    assert announced(engine) == [None]  # Raj was not told yet
    assert [d.owner for d in send_digests(settings, engine, now=MONDAY).digests] == [RAJ]
    assert f"specfleet mr revert {merged}" in body_of(mailbox.to(RAJ)[0])
    assert announced(engine)[0] is not None
    assert len(mailbox.to(ANA)) == 1 and mailbox.to(LEE) == []


def test_automerges_in_the_digest_are_a_pure_decision():
    """Only the owner's products, only owners not yet told, oldest first."""
    products = [ProductFacts("a", "A", (ANA,)), ProductFacts("b", "B", (ANA, RAJ))]
    merged = [
        Automerged(2, "b", 12, "later", "deterministic", MONDAY, announced_to=frozenset({RAJ})),
        Automerged(1, "a", 11, "earlier", "security-patch", MONDAY - dt.timedelta(days=1)),
    ]
    digests = owner_digests(products, [], [], "2026-W50", automerged=merged)
    assert [d.owner for d in digests] == [ANA]  # Raj was told about b's already
    assert [item.title for item in digests[0].automerged] == ["earlier", "later"]
    text = digest_message(digests[0]).text
    assert "specfleet mr revert 11" in text and "merge-requests/" not in text  # no console URL
