"""The HTML report's look: its colours (one per series, colour-blind distinguishable in
order), its stylesheet (inlined, so the report stays one self-contained file) and each
known column's heading and number format."""

from __future__ import annotations

PALETTE = ("#2563eb", "#f59e0b", "#10b981", "#ef4444", "#8b5cf6", "#0891b2", "#db2777",
           "#65a30d", "#9ca3af")
CSS = """
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;
max-width:1040px;color:#111827;padding:1.5rem 1rem;line-height:1.45}
h1{font-size:1.5rem;margin:.2rem 0}h2{font-size:1.15rem;margin-top:2.2rem;
border-bottom:1px solid #e5e7eb;padding-bottom:.2rem}h3{font-size:.95rem;margin:.2rem 0}
p{max-width:75ch}.scroll{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;font-size:.85rem;margin:.6rem 0}
th,td{padding:.3rem .6rem;border-bottom:1px solid #f3f4f6;text-align:right;white-space:nowrap}
th:first-child,td:first-child{text-align:left}th{background:#f9fafb;font-weight:600}
svg{width:100%;height:auto;display:block}svg text{font-size:12px;fill:#374151}
.wide svg{min-width:560px}
.verdict{padding:.7rem 1rem;border-radius:6px;font-weight:600;border:1px solid}
.v-alarm{background:#fef2f2;border-color:#fca5a5;color:#991b1b}
.v-falling{background:#fffbeb;border-color:#fcd34d;color:#92400e}
.v-healthy{background:#f0fdf4;border-color:#86efac;color:#166534}
.v-unknown{background:#f9fafb;border-color:#d1d5db;color:#374151}
.muted{color:#6b7280;font-size:.85rem}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(300px,1fr));gap:1rem}
.card{border:1px solid #e5e7eb;border-radius:6px;padding:.5rem .7rem}
"""
#: column -> (label, kind); kinds: count, rate, days, money, score, ratio, text
COLUMNS: dict[str, tuple[str, str]] = {
    "reached": ("Reached", "count"), "engaged": ("Engaged", "count"), "mql": ("MQL", "count"),
    "mqa": ("MQA", "count"), "opportunity": ("Opportunity", "count"), "won": ("Won", "count"),
    "reached_to_won": ("Reached → won", "rate"), "days_reached_to_won":
    ("Days reached → won", "days"), "pipeline": ("Pipeline", "money"),
    "revenue": ("Revenue", "money"), "spend": ("Spend", "money"), "cpl": ("Cost per lead",
                                                                          "money"),
    "cost_per_opp": ("Cost per opportunity", "money"), "roi": ("ROI", "ratio"),
    "channel": ("Channel", "text"), "first_touch": ("First touch", "score"),
    "last_touch": ("Last touch", "score"), "linear": ("Linear", "score"),
    "w_shaped": ("W-shaped", "score"), "markov": ("Markov", "score"),
    "shapley": ("Shapley", "score"), "tau": ("Kendall τ", "score"), "p": ("p-value", "p"),
    "change": ("Change", "signed_rate"), "direction": ("Direction", "text"),
    "indicator": ("Indicator", "text"), "kind": ("Kind", "text"),
    "sourced_opps": ("Sourced opps", "count"), "sourced_amount": ("Sourced pipeline", "money"),
    "sourced_won": ("Sourced won", "money"), "influenced_opps": ("Influenced opps", "count"),
    "influenced_amount": ("Influenced pipeline", "money"),
    "influenced_won": ("Influenced won", "money"), "measure": ("Measure", "text"),
    "branded_search": ("Branded search", "count"), "direct": ("Direct visits", "count"),
    "ai_referrals": ("AI-assistant referrals", "count"),
    "new_accounts": ("New accounts reached", "count"),
    "engaged_targets": ("Engaged target accounts", "count"), "leads": ("Leads", "count"),
    "mqls": ("MQLs", "count"), "form_fills": ("Form fills", "count"),
    "value": ("Value", "auto"), "criterion": ("Criterion", "text"),
    "weight": ("Weight", "score"), "segment": ("Segment", "text"),
    "favour": ("Favour", "text"),
}
