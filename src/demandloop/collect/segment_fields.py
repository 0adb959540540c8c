"""The message fields the Segment SQL reads, as SQL snippets, and the ``events`` columns it
produces, with the context keys moved out of ``context`` into their own columns.

Kept apart from :mod:`demandloop.collect.segment` (the statement itself) so that each reads
on its own: this module says *where* a field is found, that one *what* is checked."""

from __future__ import annotations

import json

#: top-level message keys extracted in one JSON parse (1-based positions in ``v``)
_TOP = (
    "type", "event", "messageId", "anonymousId", "userId", "groupId", "previousId",
    "properties", "traits", "context", "originalTimestamp", "timestamp", "sentAt", "receivedAt",
)
#: context keys read in one parse of the (small) context object (see _ctx_type)
_CTX = (
    "ip", "userAgent", "page.url", "page.path", "page.referrer", "page.title",
    "campaign.source", "campaign.medium", "campaign.name", "campaign.term", "campaign.content",
    "traits",
)
_PROPS = ("url", "path", "referrer", "title")


def _paths(keys: tuple[str, ...]) -> str:
    return "[" + ", ".join(f"'$.{k}'" for k in keys) + "]"


def _v(key: str) -> str:
    """The raw JSON value of a top-level key."""
    return f"v[{_TOP.index(key) + 1}]"


def _s(key: str) -> str:
    """The string value of a top-level key (numbers are rendered as text)."""
    return f"({_v(key)} ->> '$')"


def _c(key: str) -> str:
    """A context field, from the struct ``c`` (see :func:`_ctx_type`)."""
    assert key in _CTX, key
    return "c" + "".join(f"['{part}']" for part in key.split("."))


def _ctx_type() -> str:
    """The struct ``json_transform`` reads the context keys of :data:`_CTX` into.

    One transform parses ``context`` once and looks each key up once; the equivalent
    multi-path ``json_extract_string`` made a whole ingestion 8 % more instructions
    (callgrind, 30k simulated events). Values that are not strings come back as their JSON text, as
    with ``json_extract_string``; ``traits`` stays JSON so that only an object is used.
    """
    tree: dict[str, object] = {}
    for key in _CTX:
        head, _, sub = key.partition(".")
        if sub:
            node = tree.setdefault(head, {})
            assert isinstance(node, dict)
            node[sub] = "VARCHAR"
        else:
            tree[key] = "JSON" if key == "traits" else "VARCHAR"
    return json.dumps(tree, separators=(",", ":"))


def _p(key: str) -> str:
    return f"p[{_PROPS.index(key) + 1}]"


def _ts(expr: str) -> str:
    # The plain TIMESTAMP cast is 4x cheaper but ignores offsets: only for UTC ('Z') texts.
    return (f"CASE WHEN ends_with({expr}, 'Z') THEN TRY_CAST({expr} AS TIMESTAMP) "
            f"ELSE TRY_CAST({expr} AS TIMESTAMPTZ)::TIMESTAMP END")


def _utm(key: str, campaign_key: str) -> str:
    # context.campaign is what analytics.js fills from the URL; fall back to the URL itself.
    # CASE, not coalesce: DuckDB evaluates every coalesce argument, and the regex is costly.
    field = _c("campaign." + campaign_key)
    return (
        f"CASE WHEN {field} IS NOT NULL THEN {field} WHEN contains(url, 'utm_{key}=') "
        f"THEN nullif(url_decode(regexp_extract(url, '[?&]utm_{key}=([^&#]*)', 1)), '') END"
    )


#: the ``events`` columns staging produces (the rest, ``workspace_id``, ``source`` and
#: ``load_id``, are the loader's)
EVENT_COLUMNS = (
    "message_id", "type", "event", "anonymous_id", "user_id", "group_id", "previous_id",
    "properties", "traits", "context", "ip", "user_agent", "url", "path", "referrer", "title",
    "utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content",
    "timestamp", "original_timestamp", "sent_at", "received_at", "context_moved",
)

#: context keys stored once, in their own column, and the bit each sets in ``context_moved``
MOVED = (
    ("ip", "ip"), ("userAgent", "user_agent"), ("page.url", "url"), ("page.path", "path"),
    ("page.referrer", "referrer"), ("page.title", "title"),
)


def _moved_mask() -> str:
    """Which context keys this message stores in columns instead (see :data:`MOVED`).

    A key moves only when its value is exactly the column's, so the view ``events_full``
    can put it back: ``ip`` and ``userAgent`` always (their columns are copies), a page
    field only when the column did not come from ``properties`` with another value.
    """
    bits = []
    for bit, (key, column) in enumerate(MOVED):
        same = f"{_c(key)} IS NOT NULL" if bit < 2 else f"coalesce({_c(key)} = {column}, false)"
        bits.append(f"({same})::INTEGER * {1 << bit}")
    return f"CAST({' + '.join(bits)} AS UTINYINT)"


def _patches() -> str:
    """A JSON merge patch per ``context_moved`` value that deletes exactly those keys."""
    out = []
    for mask in range(1 << len(MOVED)):
        patch: dict[str, object] = {}
        for bit, (key, _) in enumerate(MOVED):
            if mask & (1 << bit):
                head, _, sub = key.partition(".")
                if sub:
                    page = patch.setdefault(head, {})
                    assert isinstance(page, dict)
                    page[sub] = None
                else:
                    patch[key] = None
        out.append("'" + json.dumps(patch, separators=(",", ":")) + "'")
    # typed once as a JSON list: a per-row cast would parse the chosen patch again
    return "([" + ", ".join(out) + "]::JSON[])"


# Moving the page fields, IP and user agent out of ``context`` halves what each event stores
# (the same choice Segment's warehouses make with their context_* columns); the patch list is
# a constant, so each row pays one merge.
_EVENT_SELECT = ", ".join(
    f"CASE WHEN context_moved = 0 THEN ctx ELSE json_merge_patch(ctx, {_patches()}"
    "[context_moved + 1]) END AS context" if c == "context" else c
    for c in EVENT_COLUMNS
)
