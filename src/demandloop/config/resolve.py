"""Settings of the resolve and enrich stages: identity (``[identity]``) and channel,
motion and topic rules (``[enrich]``)."""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from demandloop.config.base import Section as _Section


class IdentitySettings(_Section):
    """How email addresses map to accounts."""

    personal_email_domains: list[str] = Field(
        default_factory=list,
        description="Extra personal (free) email domains that must never create an account.",
    )
    business_email_domains: list[str] = Field(
        default_factory=list,
        description="Domains wrongly listed as free mail that are real companies here.",
    )
    domain_aliases: dict[str, str] = Field(
        default_factory=dict,
        description="Domain -> the account domain it belongs to (e.g. acme.co.uk = acme.com).",
    )
    max_users_per_device: int = Field(
        2, ge=1, le=100,
        description="An anonymous id linked to more user ids is a shared device: not merged.",
    )
    use_asn: bool = Field(
        True, description="Look up anonymous visitors' IPs in the open IP-to-organisation table.",
    )


class ChannelRule(_Section):
    """A channel rule of your own; any listed condition matching names the channel."""

    channel: str = Field(..., min_length=1, description="Channel name to assign.")
    utm_source: list[str] = Field(default_factory=list, description="utm_source values.")
    utm_medium: list[str] = Field(default_factory=list, description="utm_medium values.")
    referrer_host: list[str] = Field(default_factory=list, description="Referrer hosts.")
    url_contains: list[str] = Field(default_factory=list, description="URL fragments.")


class EnrichSettings(_Section):
    """Channel, motion and topic rules."""

    brand_terms: list[str] = Field(
        default_factory=list,
        description="Brand words: a search whose term or campaign names one is branded search.",
    )
    channel_rules: list[ChannelRule] = Field(
        default_factory=list,
        description="Your own channel rules, checked before the built-in ones "
        "([[enrich.channel_rules]] tables).",
    )
    topics: dict[str, str] = Field(
        default_factory=dict,
        description="Topic name -> regular expression over page paths (checked first).",
    )

    @field_validator("topics")
    @classmethod
    def _regexes(cls, value: dict[str, str]) -> dict[str, str]:
        for topic, pattern in value.items():
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"topic '{topic}': bad regular expression: {exc}") from None
        return value

