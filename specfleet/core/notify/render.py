"""How a digest or a needs-human notice reads: plain text for e-mail, JSON for chat webhooks.

Slack and Mattermost incoming webhooks take ``{"text": ...}`` in their own markdown (Slack's
mrkdwn links are ``<url|label>``); Teams' Workflows webhooks take an Adaptive Card in a
``message`` attachment. Everything here is pure: texts in, texts and dicts out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from specfleet.core.notify.digest import Automerged, NeedsHuman, OwnerDigest, WaitingMergeRequest

WebhookFormat = Literal["slack", "mattermost", "teams"]


@dataclass(frozen=True)
class Message:
    """One notification: a subject, a plain-text body and markdown lines for chat."""

    subject: str
    text: str
    markdown: tuple[str, ...]


def digest_message(digest: OwnerDigest, console_url: str | None = None) -> Message:
    """The weekly digest for one owner."""
    subject = _subject(digest)
    names = ", ".join(product.name for product in digest.products)
    text = [f"Your data products: {names}.", ""]
    markdown = [f"**{subject}** for {digest.owner}", f"Your data products: {names}."]
    if digest.merge_requests:
        text.append("Merge requests waiting for your review:")
        markdown.append("**Merge requests waiting for your review**")
        for request in digest.merge_requests:
            text += _request_text(digest, request)
            markdown.append(_request_markdown(digest, request))
        text.append("")
    if digest.needs_human:
        text.append("Products that need a person:")
        markdown.append("**Products that need a person**")
        for item in digest.needs_human:
            text += _needs_human_text(digest.product_name(item.product_id), item, console_url)
            markdown.append(_needs_human_markdown(digest.product_name(item.product_id), item))
        text.append("")
    if digest.automerged:
        text.append("Merged without a click on your automerge opt-in (revert if unwanted):")
        markdown.append("**Merged by automerge** (revert if unwanted)")
        for merged in digest.automerged:
            name = digest.product_name(merged.product_id)
            text += _automerged_text(name, merged, console_url)
            markdown.append(_automerged_markdown(name, merged, console_url))
        text.append("")
    if console_url:
        text.append(f"Everything waiting for you: {console_url.rstrip('/')}/")
    text.append("You get this because you own these products in specfleet; ask the platform team")
    text.append("to opt you out (specfleet digest opt-out).")
    return Message(subject, "\n".join(text) + "\n", tuple(markdown))


def _subject(digest: OwnerDigest) -> str:
    count = len(digest.merge_requests)
    stuck = len(digest.needs_human)
    parts = []
    if count:
        parts.append(f"{count} merge request{'s' if count != 1 else ''} to review")
    if stuck:
        parts.append(
            f"{stuck} product{'s' if stuck != 1 else ''} need{'s' if stuck == 1 else ''} you"
        )
    if digest.automerged:
        parts.append(f"{len(digest.automerged)} merged by automerge")
    return f"specfleet {digest.week}: " + ", ".join(parts)


def needs_human_message(
    product_name: str, owner: str, item: NeedsHuman, console_url: str | None = None
) -> Message:
    """The immediate notice that a product's evaluation needs a person."""
    subject = f"specfleet: {product_name} needs you"
    text = [f"specfleet could not produce a verified change for {product_name}.", ""]
    text += _needs_human_text(product_name, item, console_url)
    markdown = (f"**{subject}** ({owner})", _needs_human_markdown(product_name, item))
    return Message(subject, "\n".join(text) + "\n", markdown)


def webhook_payload(message: Message, flavour: WebhookFormat) -> dict[str, Any]:
    """The JSON body an incoming webhook of that kind accepts."""
    if flavour == "teams":
        return {
            "type": "message",
            "attachments": [
                {
                    "contentType": "application/vnd.microsoft.card.adaptive",
                    "content": {
                        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                        "type": "AdaptiveCard",
                        "version": "1.4",
                        "body": [
                            {"type": "TextBlock", "text": line, "wrap": True}
                            for line in message.markdown
                        ],
                    },
                }
            ],
        }
    lines = list(message.markdown)
    if flavour == "slack":
        lines = [_slack(line) for line in lines]
    return {"text": "\n".join(lines)}


def _request_text(digest: OwnerDigest, request: WaitingMergeRequest) -> list[str]:
    lines = [
        f"- {digest.product_name(request.product_id)}: {request.title} [{request.verdict}]",
        f"  {request.url}",
    ]
    if request.rules:
        answered = "; ".join(f"{rule.id} ({rule.severity}) {rule.title}" for rule in request.rules)
        lines.append(f"  answers new rules: {answered}")
    return lines


def _request_markdown(digest: OwnerDigest, request: WaitingMergeRequest) -> str:
    line = (
        f"- {digest.product_name(request.product_id)}: [{request.title}]({request.url}) "
        f"— {request.verdict}"
    )
    if request.rules:
        line += "; answers " + ", ".join(f"{r.id} ({r.severity})" for r in request.rules)
    return line


def _automerged_text(name: str, item: Automerged, console_url: str | None) -> list[str]:
    lines = [f"- {name}: !{item.merge_request_id} {item.title}", f"  {_merged_how(item)}"]
    if item.revert_merge_request_id is not None:
        lines.append(f"  A revert is already open: merge request {item.revert_merge_request_id}")
        page = _mr_page(console_url, item.revert_merge_request_id)
        lines += [f"  {page}"] if page else []
        return lines
    page = _mr_page(console_url, item.merge_request_id)
    if page:
        lines.append(f"  Revert: the Revert button on {page} opens a merge request undoing it,")
    lines.append(f"  or run: specfleet mr revert {item.merge_request_id}")
    return lines


def _automerged_markdown(name: str, item: Automerged, console_url: str | None) -> str:
    label = _label(f"!{item.merge_request_id} {item.title}")
    page = _mr_page(console_url, item.merge_request_id)
    line = f"- {name}: " + (f"[{label}]({page})" if page else label) + f" — {_merged_how(item)}"
    if item.revert_merge_request_id is not None:
        return line + f"; a revert is already open (merge request {item.revert_merge_request_id})"
    revert = f"[Revert]({page}) or " if page else "revert: "
    return line + f"; {revert}`specfleet mr revert {item.merge_request_id}`"


def _merged_how(item: Automerged) -> str:
    when = item.merged_at.strftime("%Y-%m-%d %H:%M UTC")
    commit = f", commit {item.merged_commit[:12]}" if item.merged_commit else ""
    return f"merged {when} under automerge level {item.level}{commit}"


def _mr_page(console_url: str | None, merge_request_id: int) -> str | None:
    """The console's merge request page, where the Revert button is."""
    return f"{console_url.rstrip('/')}/merge-requests/{merge_request_id}" if console_url else None


def _label(text: str) -> str:
    # a link label with brackets would end the markdown (and Slack's) link early
    return text.replace("[", "(").replace("]", ")").replace("|", "/")


def _needs_human_text(name: str, item: NeedsHuman, console_url: str | None) -> list[str]:
    lines = [f"- {name}: {item.reason}", f"  What to do: {item.what_to_do}"]
    if console_url:
        lines.append(f"  {console_url.rstrip('/')}/evaluations/{item.evaluation_id}")
    return lines


def _needs_human_markdown(name: str, item: NeedsHuman) -> str:
    return f"- {name}: {item.reason} — *what to do:* {item.what_to_do}"


def _slack(line: str) -> str:
    # Slack's mrkdwn: *bold*, _italic_, <url|label>
    import re

    line = re.sub(r"\[([^\]]+)\]\(([^)\s]+)\)", r"<\2|\1>", line)
    line = re.sub(r"\*\*([^*]+)\*\*", r"*\1*", line)
    return re.sub(r"(?<!\*)\*what to do:\*", "_what to do:_", line)
