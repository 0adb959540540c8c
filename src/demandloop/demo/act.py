"""The demo's last step: act on the scores. Workflows route MQA accounts, alert the rep and
enrol the best contacts in a sequence; the sequence's first day of email is written to
``outbox/`` (file transport), within each mailbox's warm-up limit and the recipients' hours.

The alerts go to a local webhook receiver started for the demo, standing in for a Slack
incoming webhook: in a real workspace ``url`` is the Slack (or any) webhook. The workflow file
is rewritten on every run because that receiver's port changes.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import html
import http.server
import threading
from pathlib import Path
from typing import Any

import orjson
from rich.markup import escape as rich_escape

from demandloop.workspace import Workspace

#: appended to the demo's demandloop.toml (a sequence and two mailboxes writing .eml files)
DEMO_MAIL = '''
# -- added by the demo: two mailboxes that write .eml files, and one sequence ------------
[[activate.mailboxes]]
name = "ana"
address = "ana@mail.vendor.example"
display_name = "Ana Ruiz"
transport = "file"

[[activate.mailboxes]]
name = "ben"
address = "ben@mail.vendor.example"
display_name = "Ben Okafor"
transport = "file"

[[activate.sequences]]
name = "mqa-outreach"
mailboxes = ["ana", "ben"]
people = 1

[[activate.sequences.steps]]
type = "email"
subject = "{{ account.name }} and {{ (topic or 'your pipeline') | replace('-', ' ') }}"
body = """Hi {{ person.first_name | default('there', true) }},

I noticed {{ account.name }} has been looking at:
{% for e in engaged[:3] %}- {{ e.title }}
{% endfor %}
{{ case_study.title }}: {{ case_study.url }}

Worth a 20-minute call?
{{ sender.name }}"""

[[activate.sequences.steps]]
type = "wait"
days = 3

[[activate.sequences.steps]]
type = "email"
subject = "Re: {{ account.name }} and {{ (topic or 'your pipeline') | replace('-', ' ') }}"
body = "Hi {{ person.first_name | default('there', true) }}, did this land at a bad time?"

[[activate.sequences.steps]]
type = "task"
title = "Call {{ person.name }} at {{ account.name }}"
'''

DEMO_WORKFLOWS = '''# written by `demandloop demo` on each run (the alert receiver's port changes)
[[workflows]]
name = "mqa-route-alert-enrol"
when = {{trigger = "stage_changed", to = "mqa"}}
if = [{{field = "band", op = "in", value = ["Strong", "Moderate"]}}]
then = [
  {{action = "assign", strategy = "round_robin", owners = ["ana", "ben"]}},
  {{action = "notify", url = "{url}/slack", format = "slack"}},
  {{action = "enrol", sequence = "mqa-outreach"}},
  {{action = "add_to_audience", audience = "mqa-linkedin"}},
]
'''


class _Receiver:
    """A local webhook receiver standing in for Slack."""

    def __init__(self) -> None:
        self.got: list[dict[str, Any]] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                outer.got.append(orjson.loads(self.rfile.read(
                    int(self.headers["Content-Length"]))))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *a: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


def configure(text: str) -> str:
    """The example configuration with the demo's mail settings, mailboxes and sequence."""
    for line in ("mailboxes = []\n", "sequences = []\n"):  # given as tables below
        text = text.replace(line, "", 1)
    # the simulated market lies in the past: let its stage changes fire today
    text = text.replace("max_signal_age_days = 14.0", "max_signal_age_days = 0", 1)
    text = text.replace('postal_address = ""', 'postal_address = "Demo Vendor Inc, 1 Main '
                        'Street, Springfield"', 1)
    text = text.replace("case_studies = {}", 'case_studies = {"*" = {title = "How a team '
                        'like yours doubled pipeline", url = "https://vendor.example/'
                        'customers"}}', 1)
    return text + DEMO_MAIL


def act(directory: Path, say: Any) -> dict[str, Any]:
    """Run the demo's workflows and one day of the sequence; print and return what happened."""
    receiver = _Receiver()
    try:
        folder = directory / "workflows"
        folder.mkdir(exist_ok=True)
        (folder / "demo.toml").write_text(DEMO_WORKFLOWS.format(url=receiver.url),
                                          encoding="utf-8")
        with Workspace.open(directory) as ws:
            now = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
            run = ws.run_workflows(now=now)
            sent = 0
            # the next three days hour by hour, as `serve` would: a business day in every
            # zone, whatever day of the week the demo runs
            for hour in range(72):
                sent += ws.run_sequences(now=now + dt.timedelta(hours=hour)).sent
            history = ws.workflow_history(limit=1_000_000)
            enrolments = ws.enrolments()
            messages = ws.mail_messages()
            audience = len(ws.segment("mqa-linkedin")[1]) if (
                history["result"].astype(str).str.startswith("added to audience").any()) else 0
    finally:
        receiver.httpd.shutdown()
    alerts = int(((history["action"] == "notify") & (history["status"] == "done")).sum())
    refused = int(history["result"].astype(str).str.startswith("not enrolled").sum())
    outbox = directory / "outbox"
    say(f"[bold]10. Act:[/bold] workflows fired {run.fired} time(s) this run; in all "
        f"{alerts} Slack-style alert(s) delivered ({len(receiver.got)} to the local receiver "
        f"this run), {len(enrolments)} people enrolled in 'mqa-outreach' "
        f"({refused} account(s) held back by the quality gate), {audience} account(s) in the "
        f"'mqa-linkedin' audience")
    if receiver.got:
        # the text is Slack's: `&`, `<` and `>` escaped as Slack asks, which a terminal
        # would show as entities; and `say` reads Rich markup, which a name may hold
        say("    first alert: " + rich_escape(html.unescape(receiver.got[0]["text"])))
    say(f"    sequence, the next 3 days: {sent} email(s) written to {outbox} this run "
        f"({int((messages['status'] == 'sent').sum()) if not messages.empty else 0} in all; "
        "each new mailbox warms up at 5, then 8, 12, ... a day, sending in each recipient's "
        "9:00-17:00 on business days)")
    files = sorted(outbox.glob("*.eml")) if outbox.is_dir() else []
    if files:
        msg = email.message_from_bytes(files[0].read_bytes(), policy=email.policy.default)
        body = msg.get_body(("plain",))
        text = body.get_content() if body is not None else ""
        say(rich_escape(f"    e.g. To: {msg['To']} | Subject: {msg['Subject']} | "
                        + " ".join(text.split()[:18]) + " ..."))
    return {"fired": run.fired, "alerts": alerts, "alerts_received": len(receiver.got),
            "enrolled": len(enrolments), "held_back": refused, "emails_this_run": sent,
            "audience": audience, "outbox": str(outbox)}
