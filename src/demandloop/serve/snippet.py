"""``/dl.js``: the browser snippet, with the workspace's privacy and form settings baked in.

Small and dependency-free (about 7 KB): page views with URL, referrer and UTM parameters
(and on a single-page app's navigations, by history.pushState),
``identify`` with the email of a submitted form (and only the fields the site lists in
``collector.form_fields`` or marks with ``data-dl-capture``), a first-party ``dl_aid`` cookie
as anonymous id, a consent API (``dl.consent("granted"|"denied")``, default
``collector.consent_default``), and nothing at all when the browser sends Do-Not-Track or
Global Privacy Control and the workspace respects them (``collector.respect_privacy_signals``).
Events go to the collector as ``text/plain`` with the write key inside, analytics.js's way,
so no CORS preflight is needed.

With ``chat.enabled`` (and a server that holds the database), pages whose script tag has
``data-chat="on"`` also get the chat widget (``docs/chat.md``).

With experiences configured, it also personalises (``docs/personalization.md``): it hides
only the selectors experiences change, asks ``GET /v1/decide``, applies the changes, shows
the original when no answer comes within ``personalize.timeout_ms``, and sends
``Experience Viewed`` (experience, variant, control) for every decision.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import orjson

from demandloop.config.collect import CollectorSettings


def snippet(settings: CollectorSettings, personalize: dict[str, Any] | None = None,
            chat: dict[str, Any] | None = None) -> str:
    """dl.js for *settings*; with *personalize* (``hide``: selectors to pre-hide,
    ``timeoutMs``) it also asks ``/v1/decide`` and applies the decisions; with *chat* (the
    widget's texts) it carries the chat widget, shown on pages that opt in."""
    folder = resources.files("demandloop.serve")
    source = folder.joinpath("dl.js").read_text(encoding="utf-8")
    for marker, name, wanted in (("PERSONALIZE", "dl_personalize.js", personalize),
                                 ("CHAT", "dl_chat.js", chat)):
        extra = ""
        if wanted is not None:
            extra = folder.joinpath(name).read_text(encoding="utf-8")
            extra = extra[extra.index("*/") + 2:].lstrip("\n")  # its own header comment
        source = source.replace(f"  /*{marker}*/\n", extra)
    config = {"respectPrivacy": settings.respect_privacy_signals,
              "identifyForms": settings.identify_forms or None,
              "cookieDays": settings.cookie_days,
              "consentDefault": settings.consent_default,
              "formFields": list(settings.form_fields), "personalize": personalize,
              "chat": chat}
    return source.replace("__CONFIG__", orjson.dumps(config).decode())
