"""A synthetic but realistic B2B market with a saved ground truth.

``simulate(...)`` writes, into one folder:

* ``events.jsonl``: Segment-spec messages (page/identify/track/group) with ``context.ip``,
  ``userAgent``, ``page`` and ``campaign``;
* ``accounts.csv``, ``contacts.csv``, ``opportunities.csv``: what a CRM export holds (only the
  accounts and contacts the vendor knows about, not the whole market), each row with the
  date it was created: the targets and a third of the rest before the period, any other
  account with its first opportunity, contacts at their first form fill (or before the
  period, for prospected buyers of targets);
* ``ip_ranges.csv``: office networks of the CRM's accounts, as a reverse-IP vendor would
  supply, each ``known_since`` its account;
* ``access.log``: the site's access log, AI crawlers with planted coverage gaps
  (:mod:`demandloop.simulate.crawlers`);
* ``truth.json``: the hidden state (fit, in-market windows, every person's devices and emails,
  home/mobile networks, planted channel effects) used to evaluate every later score.

Example:
    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp())
    >>> summary = simulate(accounts=20, days=10, seed=1, out=out)
    >>> (out / "events.jsonl").exists() and summary.events > 0
    True
"""

from demandloop.simulate.output import SimulationSummary, simulate

__all__ = ["SimulationSummary", "simulate"]
