"""Who is on the other end of a request: its client's address and the host it asked for.

Behind a reverse proxy (deploy/nginx) every request comes from the proxy's
address, and the client's own is in ``X-Forwarded-For``; but any client can send
that header, so it is believed only when the peer is one of
``http.trusted_proxies``. nginx's ``$proxy_add_x_forwarded_for`` appends the
peer it saw to whatever the client sent, so the list is read from the right:
the client is the first address that is not a trusted proxy (what nginx's own
``real_ip_recursive`` does). Entries to the left of it are the client's word
and never count. The same rule decides whether ``X-Forwarded-Host`` names a
host of this site (the CSRF origin checks).

The sign-in limiter, the API's origin check and the pages' CSRF check all ask
here, so one setting decides for all of them.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable
from urllib.parse import urlsplit

from aiohttp import web

from node.config import ConfigError
from node.http.services import CONFIG

logger = logging.getLogger(__name__)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
SETTING = "http.trusted_proxies"
_MAX_HOPS = 32


class TrustedProxies:
    """The networks whose forwarded headers are believed (none by default)."""

    def __init__(self, networks: Iterable[Network] = ()) -> None:
        self.networks = tuple(networks)

    @classmethod
    def parse(cls, text: str) -> TrustedProxies:
        """From the setting's comma-separated addresses and CIDR networks."""
        networks = []
        for entry in (part.strip() for part in text.split(",")):
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                raise ConfigError(
                    f"{SETTING}: {entry!r} is not an address or network "
                    "(write e.g. '127.0.0.1, ::1, 10.0.0.0/8')"
                ) from None
        return cls(networks)

    def trusts(self, address: str | None) -> bool:
        ip = _ip(address)
        return ip is not None and any(ip in net for net in self.networks)

    def client_address(self, request: web.Request) -> str:
        """The client's address: the peer, or behind trusted proxies the last untrusted hop."""
        peer = request.remote or "?"
        if not self.trusts(peer):
            return peer
        hops = [
            hop.strip()
            for header in request.headers.getall("X-Forwarded-For", [])
            for hop in header.split(",")
        ][-_MAX_HOPS:]
        client = peer
        for hop in reversed(hops):
            ip = _ip(hop)
            if ip is None:
                break  # garbage from the client: the last hop we could read is the client
            client = str(ip)
            if not self.trusts(client):
                break
        return client

    def hosts(self, request: web.Request) -> set[str]:
        """The host[:port] names this request may call its own site (lower case)."""
        allowed = {request.host.lower()}
        forwarded = request.headers.get("X-Forwarded-Host")
        if forwarded and self.trusts(request.remote):
            allowed.add(forwarded.split(",")[0].strip().lower())
        return allowed


def _ip(text: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if not text:
        return None
    try:
        ip = ipaddress.ip_address(text.strip().removeprefix("[").removesuffix("]"))
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


IPV6_PREFIX = 64


def limit_key(address: str) -> str:
    """What the sign-in limits count ``address`` as: an IPv4 address itself, an IPv6
    one its /64 (a home line or a host gets a whole /64, so its addresses are one
    client's), an IPv4-mapped one the IPv4 address."""
    ip = _ip(address)
    if isinstance(ip, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((ip, IPV6_PREFIX), strict=False))
    return str(ip) if ip is not None else address


TRUSTED = web.AppKey("trusted_proxies", TrustedProxies)
_NONE = TrustedProxies()


def trusted(request: web.Request) -> TrustedProxies:
    return request.app.get(TRUSTED, _NONE)


def client_address(request: web.Request) -> str:
    return trusted(request).client_address(request)


def names_this_site(request: web.Request, url: str) -> bool:
    """Whether ``url`` (an Origin or Referer) is on this site: its host[:port] is
    the request's ``Host``, or behind a trusted proxy its ``X-Forwarded-Host``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return False
    return parts.netloc.lower() in trusted(request).hosts(request)


def setup(app: web.Application) -> None:
    """Read ``http.trusted_proxies`` when the node starts (a bad entry stops the start)."""

    async def load(app: web.Application) -> None:
        app[TRUSTED] = TrustedProxies.parse(str(app[CONFIG][SETTING]))

    app.on_startup.append(load)
