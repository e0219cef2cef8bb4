"""``Accept-Encoding`` negotiation (RFC 9110 §12.5.3).

- Each listed coding has a weight ``q`` (default 1); ``q=0`` means "not acceptable".
- ``*`` gives its weight to every coding the header does not name, ``identity`` included.
- ``identity`` (no coding) is acceptable unless excluded by ``identity;q=0`` or by ``*;q=0``
  without an ``identity`` entry; even then aeros sends identity rather than a 406.
- The server picks the acceptable coding with the highest weight; on a tie the one listed
  first in ``compression=[...]`` wins. A coding is not used when ``identity`` is weighted
  strictly higher than it (explicitly, or through ``*``).
- ``x-gzip`` is read as ``gzip`` (RFC 9110 §8.4.1.3). Tokens are case-insensitive; an entry
  with a malformed weight is ignored.
- No ``Accept-Encoding`` header at all: identity. (The RFC allows any coding then, but old
  clients that send none often cannot decode, so every common server sends identity.)
"""

from __future__ import annotations

from collections.abc import Sequence

_ALIASES = {"x-gzip": "gzip"}


def parse_accept_encoding(value: str) -> dict[str, float]:
    """Map each coding token (lower-case) of an ``Accept-Encoding`` value to its weight."""
    weights: dict[str, float] = {}
    for item in value.split(","):
        token, _, parameters = item.partition(";")
        token = token.strip().lower()
        if not token:
            continue
        weight: float | None = 1.0
        for parameter in parameters.split(";"):
            name, _, raw = parameter.partition("=")
            if name.strip().lower() == "q":
                weight = _parse_weight(raw)
        if weight is None:
            continue
        token = _ALIASES.get(token, token)
        weights.setdefault(token, weight)  # the first entry for a token counts
    return weights


def _parse_weight(raw: str) -> float | None:
    raw = raw.strip().strip('"')
    try:
        weight = float(raw)
    except ValueError:
        return None
    if not 0.0 <= weight <= 1.0:  # also rejects nan
        return None
    return weight


def rank(value: str | None, offered: Sequence[str]) -> tuple[int, ...]:
    """Indexes into ``offered`` that the client accepts, best first (ties: server order).

    An empty result means identity. The first entry that suits the response is the one to use.
    """
    if value is None:
        return ()
    weights = parse_accept_encoding(value)
    star = weights.get("*")
    identity = weights.get("identity", star)  # None: not mentioned, so never preferred
    ranked = []
    for index, coding in enumerate(offered):
        weight = weights.get(coding, star)
        if weight is None or weight <= 0.0:
            continue
        if identity is not None and identity > weight:
            continue
        ranked.append((-weight, index))
    ranked.sort()
    return tuple(index for _, index in ranked)
