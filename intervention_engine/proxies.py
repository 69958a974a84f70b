"""Forwarding headers are believed only from the reverse proxies named in TRUSTED_PROXIES.

``X-Forwarded-For`` and ``X-Forwarded-Proto`` are whatever the connecting peer wrote: from a browser they
would let anyone pick the client address that is logged, or claim https. From a trusted proxy, the client
is the nearest address in ``X-Forwarded-For`` that is not itself a trusted proxy (walking from the right:
the left part is what the client sent); from anyone else, every forwarding header is dropped before any
other middleware reads it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from functools import lru_cache

from django.conf import settings
from django.http import HttpRequest, HttpResponse

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# Every header a library may read a client address or scheme from (django-ipware's list, Django's
# SECURE_PROXY_SSL_HEADER and USE_X_FORWARDED_HOST/PORT).
FORWARDING_HEADERS = (
    "HTTP_X_FORWARDED_FOR",
    "HTTP_X_FORWARDED_PROTO",
    "HTTP_X_FORWARDED_HOST",
    "HTTP_X_FORWARDED_PORT",
    "HTTP_X_FORWARDED",
    "HTTP_FORWARDED_FOR",
    "HTTP_FORWARDED",
    "HTTP_X_REAL_IP",
    "HTTP_CLIENT_IP",
    "HTTP_X_CLIENT_IP",
    "HTTP_X_CLUSTER_CLIENT_IP",
    "HTTP_CF_CONNECTING_IP",
    "HTTP_TRUE_CLIENT_IP",
    "HTTP_VIA",
)


@lru_cache(maxsize=8)
def trusted_networks(proxies: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(proxy, strict=False) for proxy in proxies)


def is_trusted(address: str, networks: Iterable[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return False
    return any(ip in network for network in networks)


def client_address(peer: str, forwarded_for: str, networks: tuple[Network, ...]) -> str:
    """The client behind a trusted ``peer``: the rightmost valid address not itself a trusted proxy."""
    client = peer
    for hop in reversed([part.strip() for part in forwarded_for.split(",") if part.strip()]):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            break  # garbage in the chain: stop at the last hop a proxy of ours vouched for
        client = hop
        if not is_trusted(hop, networks):
            break
    return client


class TrustedProxyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        networks = trusted_networks(tuple(settings.TRUSTED_PROXIES))
        peer = str(request.META.get("REMOTE_ADDR") or "")
        if networks and is_trusted(peer, networks):
            forwarded_for = str(request.META.get("HTTP_X_FORWARDED_FOR") or "")
            request.META["REMOTE_ADDR"] = client_address(peer, forwarded_for, networks)
            # The proxy's X-Forwarded-Proto stays for SECURE_PROXY_SSL_HEADER; the rest is not ours to use.
            kept = {"HTTP_X_FORWARDED_PROTO"}
        else:
            kept = set()
        for header in FORWARDING_HEADERS:
            if header not in kept:
                request.META.pop(header, None)
        return self.get_response(request)
