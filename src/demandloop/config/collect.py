"""Settings of collection: what is kept of what visitors send (``[collect]``) and the HTTP
collector that receives it (``[collector]``)."""

from __future__ import annotations

import ipaddress
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator

from demandloop.config.base import Section, http_url


class CollectSettings(Section):
    """What is kept of collected data: the privacy policy of raw events."""

    ip: Literal["full", "truncate", "drop"] = Field(
        "full", description="What is kept of a visitor's IP address once its account has "
        "been resolved: full, truncate (IPv4 to /24, IPv6 to /48) or drop. The account "
        "matched while the address was whole is kept.")
    retention_days: int = Field(
        0, ge=0, le=36_500, description="Raw events received longer ago than this many days "
        "are deleted by the server (hourly) and by 'demandloop privacy retention' (0: kept "
        "forever). Touches, scores and reports keep what was derived from them until the "
        "next resolve.")


def local_url(host: str, port: int) -> str:
    """The address a local client uses for a server listening on *host*."""
    if host in ("", "0.0.0.0"):  # noqa: S104 - reading the setting, not binding
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class CollectorSettings(Section):
    """The Segment-compatible HTTP collector (demandloop serve)."""

    host: str = Field("127.0.0.1", description="Address to listen on (0.0.0.0 for all).")
    port: int = Field(8642, ge=1, le=65535, description="Port to listen on.")
    public_url: Annotated[str, http_url("public_url", "such as https://collect.example.com")
                          ] = Field("", description="The collector's address as browsers reach it "
                            "(https://collect.example.com), handed to analytics.js as its "
                            "apiHost; empty: http://HOST:PORT of this section. The request's "
                            "Host header is never reflected.")
    workers: int = Field(1, ge=1, le=64, description="HTTP worker processes (one loader "
                         "process owns the database whatever the number).")
    log_dir: str = Field("collector-log", description="Durable log folder, relative to the "
                         "workspace folder.")
    max_request_bytes: int = Field(512_000, ge=1024, description="Largest request body "
                                   "(after gzip), like Segment's 500 KB.")
    max_expanded_bytes: int = Field(2_000_000, ge=1024, description="Largest size of a "
                                    "request once a batch-level context is copied into each "
                                    "of its messages (what is stored); over it: 413.")
    rate_limit: float = Field(0.0, ge=0, description="Events per second per workspace "
                              "(0 = no limit); over it: 429 with Retry-After.")
    rate_burst: float = Field(0.0, ge=0, description="Events a workspace may send at once "
                              "above the rate (0 = one second's worth).")
    auth_failures_per_minute: int = Field(30, ge=1, description="Requests with an unknown "
                                          "write key one client address may make per minute; "
                                          "over it: 429 (slows key guessing).")
    max_backlog_mb: float = Field(1024.0, gt=0, description="Unloaded log above this: 503 "
                                  "until the loader catches up.")
    read_timeout_seconds: float = Field(10.0, gt=0, le=600, description="A request's headers "
                                        "and body must arrive within this time, else the "
                                        "connection is closed (stalled clients hold no "
                                        "connection for long).")
    max_connections: int = Field(1024, ge=8, le=1_000_000, description="Open connections "
                                 "per HTTP process; connections beyond it are closed at once.")
    drain_seconds: float = Field(30.0, ge=0, le=3600, description="On SIGTERM or Ctrl-C, "
                                 "how long the server keeps loading the log into the store "
                                 "before it exits (what is left loads at the next start).")
    trusted_proxies: list[str] = Field(default_factory=list, description="Addresses or "
                                       "networks (CIDR) of your reverse proxies: "
                                       "X-Forwarded-For is believed only from them.")
    monitoring_token: SecretStr = Field(SecretStr(""), description="Bearer token for "
                                        "/metrics and the detail of /readyz; empty: only "
                                        "loopback clients see them.")
    cors_origins: list[str] = Field(default_factory=lambda: ["*"],
                                    description="Browser origins allowed to send events; a "
                                    "request from another origin is refused (403).")
    respect_privacy_signals: bool = Field(True, description="dl.js sends nothing when the "
                                          "browser says Do-Not-Track or Global Privacy Control.")
    consent_default: Literal["granted", "denied"] = Field(
        "granted", description="dl.js before the page calls dl.consent(): 'denied' sends "
        "nothing and sets no cookie until consent is granted.")
    identify_forms: str = Field("form", description="CSS selector of forms whose submit "
                                "sends identify (with the email field's value); empty: none.")
    form_fields: list[str] = Field(default_factory=list, description="Form fields (by name) "
                                   "dl.js sends with identify besides the email; fields the "
                                   "page marks with data-dl-capture are sent too. Nothing "
                                   "else, phone numbers included, leaves the page.")
    cookie_days: int = Field(365, ge=1, le=730, description="Lifetime of dl.js's first-party "
                             "anonymous id cookie.")
    rescore_minutes: float = Field(15.0, ge=0, description="While serving, resolve, score "
                                   "and run workflows at least this often when new events "
                                   "arrived (0: never, live rescoring included).")
    rescore_after_load_seconds: float = Field(2.0, ge=0, description="While serving, "
                                              "resolve (incrementally), score and run "
                                              "workflows after a load, at most this often "
                                              "(and, when the server answered requests "
                                              "during a run, resting twice as long as it "
                                              "took), so a stage change fires its workflows "
                                              "seconds after the event (0: only every "
                                              "rescore_minutes).")
    land_lake_seconds: float = Field(0.0, ge=0, description="While serving, append the "
                                     "events loaded since to the Parquet lake ([compute] "
                                     "lake) at most this often, as new files in its day "
                                     "partitions, so 'resolve --engine spark' reads every "
                                     "acknowledged load without an export; a lake that "
                                     "cannot be appended to (none yet, or an erasure or "
                                     "retention run since) is written again whole (0: off).")
    lake_compact_files: int = Field(24, ge=0, description="While landing loads in the lake "
                                    "(land_lake_seconds): yesterday's folder of events (UTC) "
                                    "is merged into one file once it holds this many files, "
                                    "an older day's once it holds two, so an engine reading "
                                    "the lake opens one file a day, not one per landing "
                                    "(0 or 1: never).")
    api_port: int = Field(0, ge=0, le=65535, description="With several workers, the port "
                          "of /api/v1 (served by the process that holds the database; 0: "
                          "port + 1). With one worker the API shares the collector's port.")

    def workers_api_port(self) -> int:
        """Where /api/v1 and the dashboard listen with several workers: ``api_port``, else
        the port after ``port`` (what ``serve --port`` set it to, in the workers too)."""
        return self.api_port or self.port + 1

    def base_url(self) -> str:
        """Where browsers and links reach the collector: ``public_url``, else this
        section's host and port as a local client reaches them (what dl.js tells
        analytics.js, and what invite links start with)."""
        return self.public_url.rstrip("/") or local_url(self.host, self.port)

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"'{item}' is not an IP address or CIDR network") from None
        return value


class IngestSettings(Section):
    """Validation limits applied to every incoming Segment-spec message."""

    max_event_bytes: int = Field(
        32 * 1024, ge=1024, le=1024 * 1024, description="Largest accepted message (bytes)."
    )
    max_message_id_length: int = Field(
        100, ge=8, le=1000, description="Longest accepted messageId (characters)."
    )

