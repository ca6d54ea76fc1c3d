"""Which repository URLs the server may fetch: ``SPECFLEET_REPO_ALLOW``.

Registering a product makes the server fetch its repository, so without a rule anyone allowed
to register could make it connect anywhere (``http://127.0.0.1:6379/`` tells whether Redis
answers). Patterns, comma-separated:

- ``local``: absolute paths and ``file://`` URLs on the server;
- ``https://host`` / ``ssh://host:2222``: that scheme and host (and port, if given);
- ``host``: that host with any of the remote schemes (https, http, ssh, git);
- ``*``: any remote host - except loopback, link-local and private addresses, which are
  allowed only when a pattern names them exactly.

The default is ``local`` plus the host of every configured forge. The decision is a pure
function of the URL text: a refused URL is refused before any connection is made.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from specfleet.core.errors import InputError

SCP_LIKE = re.compile(r"^(?P<user>[A-Za-z0-9_.\-]+)@(?P<host>[A-Za-z0-9_.\-]+):(?P<path>[^/].*)$")
REMOTE = ("https", "http", "ssh", "git")
DEFAULT_PORTS = {"https": 443, "http": 80, "ssh": 22, "git": 9418}


class RepoNotAllowed(InputError):
    """A repository URL that SPECFLEET_REPO_ALLOW does not allow (refused before fetching)."""


@dataclass(frozen=True)
class Location:
    scheme: str  # "local" for paths and file://
    host: str
    port: int | None


def locate(url: str) -> Location:
    """Scheme, host and port of a repository URL (scp-like ``git@host:path`` is ssh)."""
    text = url.strip()
    scp = SCP_LIKE.match(text)
    if scp:
        return Location("ssh", scp.group("host").lower(), None)
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if not scheme or scheme == "file" or (len(scheme) == 1 and text[1:2] == ":"):
        return Location("local", "", None)
    try:
        port = parts.port
    except ValueError as error:
        raise RepoNotAllowed(f"repository URL {text!r} has an invalid port") from error
    return Location(scheme, (parts.hostname or "").lower(), port)


def _internal(host: str) -> bool:
    """Loopback, link-local, private or unspecified: the server's own neighbourhood."""
    if host in ("localhost", "localhost.localdomain") or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return (
        address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_unspecified
        or address.is_reserved
    )


@dataclass(frozen=True)
class Pattern:
    scheme: str | None  # None: any remote scheme
    host: str
    port: int | None

    def matches(self, location: Location) -> bool:
        if self.scheme is not None and self.scheme != location.scheme:
            return False
        if self.scheme is None and location.scheme not in REMOTE:
            return False
        if self.host != location.host:
            return False
        default = DEFAULT_PORTS.get(location.scheme)
        return (self.port or default) == (location.port or default)


def parse_pattern(text: str) -> Pattern | str:
    """A host pattern, or the keywords ``local`` / ``*`` as they are."""
    item = text.strip().lower()
    if item in ("local", "*"):
        return item
    if "://" in item:
        parts = urlsplit(item)
        if not parts.hostname or parts.scheme not in REMOTE:
            raise InputError(f"SPECFLEET_REPO_ALLOW: {text!r} is not scheme://host[:port]")
        return Pattern(parts.scheme, parts.hostname, parts.port)
    host, _, port = item.partition(":")
    if not host or (port and not port.isdigit()):
        raise InputError(f"SPECFLEET_REPO_ALLOW: {text!r} is not host[:port]")
    return Pattern(None, host, int(port) if port else None)


@dataclass(frozen=True)
class RepoAllowList:
    local: bool
    any_remote: bool
    patterns: tuple[Pattern, ...]

    @classmethod
    def parse(cls, text: str) -> RepoAllowList:
        items = [parse_pattern(part) for part in text.split(",") if part.strip()]
        return cls(
            local="local" in items,
            any_remote="*" in items,
            patterns=tuple(item for item in items if isinstance(item, Pattern)),
        )

    def refusal(self, url: str) -> str | None:
        """Why ``url`` may not be fetched, or None when it may."""
        location = locate(url)
        if location.scheme == "local":
            return None if self.local else "local repositories are not allowed on this server"
        if location.scheme not in REMOTE:
            return f"the scheme {location.scheme!r} is not allowed"
        if any(pattern.matches(location) for pattern in self.patterns):
            return None
        if self.any_remote and not _internal(location.host):
            return None
        where = location.host + (f":{location.port}" if location.port else "")
        return f"{location.scheme}://{where} is not among the allowed repository hosts"

    def check(self, url: str) -> None:
        reason = self.refusal(url)
        if reason is not None:
            raise RepoNotAllowed(
                f"repository {url.strip()!r} refused: {reason} (SPECFLEET_REPO_ALLOW)"
            )


def default_allow_text(forge_urls: list[str | None]) -> str:
    """``local`` and the host of every configured forge (with its scheme and port)."""
    items = ["local"]
    for url in forge_urls:
        if not url:
            continue
        parts = urlsplit(url)
        if parts.hostname:
            port = f":{parts.port}" if parts.port else ""
            items.append(f"{parts.scheme}://{parts.hostname}{port}")
            # the same forge's ssh clone URLs (git@host:group/project.git)
            items.append(f"ssh://{parts.hostname}")
    return ",".join(items)
