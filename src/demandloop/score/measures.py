"""What scoring computes per account and per person at a time, without writing anything:
fit, engagement, intent surge, the features stage and MQL rules read, committee coverage
and priority. :mod:`demandloop.score.run` turns them into a stored snapshot."""

from __future__ import annotations

import datetime as dt

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd
import pyarrow as pa

from demandloop.compute import Tables, frame, isin, tables
from demandloop.config import Settings
from demandloop.domains import country_of_domain
from demandloop.score import caps
from demandloop.score.committee import from_flags, role_condition
from demandloop.score.engagement import EngagementRules, breadth, cap_cuts, decay, with_cuts
from demandloop.score.fit import Band, FitRules, band, expected_points, score_frame
from demandloop.score.intent import SurgeRules, surge_columns, surge_from, window_sums
from demandloop.score.stages import SENIORITY_RANK
from demandloop.store.db import Store


def rules_from(settings: Settings) -> tuple[FitRules, EngagementRules, SurgeRules]:
    s = settings.score
    fit = FitRules(
        industries=dict(s.fit.industries), countries=dict(s.fit.countries),
        technologies=dict(s.fit.technologies),
        employees=[Band(b.min, b.max, b.points) for b in s.fit.employees],
        revenue=[Band(b.min, b.max, b.points) for b in s.fit.revenue],
    )
    base = EngagementRules()
    engagement = EngagementRules(half_life_days=s.half_life_days,
                                 caps={**base.caps, **s.daily_caps})
    intent = SurgeRules(recent_days=s.surge_recent_days, baseline_days=s.surge_baseline_days,
                        threshold=s.surge_threshold, min_recent=s.surge_min_recent)
    return fit, engagement, intent


def cap_candidates(t: Tables, rules: EngagementRules, entities: tuple[str, ...]
                   ) -> dict[str, ir.Table]:
    """Per entity column, the touches the daily cap may cut (see :mod:`.caps`) as Ibis
    tables on *t*'s backend; empty on backends other than DuckDB and for narrowed tables
    (a few accounts' touches), where :func:`~demandloop.score.engagement.cap_cuts` groups
    every touch instead."""
    if t.backend.name != "duckdb" or t.only:
        return {}
    name = "_cap_candidates"
    flags = caps.candidates(t.backend.con, t.workspace_id, rules, entities, name)
    table = t.backend.table(name)
    return {entity: table.filter(table[flag]) for entity, flag in flags.items()}


def fit_scores(t: Tables, settings: Settings) -> pd.DataFrame:
    """Per account: fit, fit_criteria, fit_band.

    What is unknown is not held against an account: a missing country is read from the
    domain's country-code TLD when it has one, and any criterion still unknown earns the
    average points of the accounts where it is known (so an account known only from an email
    domain scores as an average prospect on what is unknown, not as the worst)."""
    accounts = frame(t.accounts.select("account_id", "domain", "industry", "country",
                                       "employees", "revenue", "technologies"))
    inferred = accounts["country"].isna()
    accounts["country"] = accounts["country"].where(
        ~inferred, accounts["domain"].map(country_of_domain))
    rules = rules_from(settings)[0]
    fits = score_frame(rules, accounts, expected_points(rules, accounts[~inferred]))
    out = pd.DataFrame({"account_id": accounts["account_id"], "fit": fits["fit"],
                        "fit_criteria": fits["fit_criteria"]})
    out["fit_band"] = out["fit"].map(band)
    return out


def account_scores(store: Store, settings: Settings, as_of: dt.datetime, *,
                   t: Tables | None = None, candidates: ir.Table | None = None,
                   fits: pd.DataFrame | None = None, reach: pd.DataFrame | None = None
                   ) -> pd.DataFrame:
    """Per account: fit, fit_band, fit_criteria, engagement, touches, people, surge,
    surging, surge_topics (pure reads; nothing written). *t*, *candidates* (of
    :func:`cap_candidates` on *t*), *fits* (:func:`fit_scores`) and *reach* (the
    :func:`~demandloop.score.engagement.breadth` frame) are found here when not given."""
    _, eng_rules, surge_rules = rules_from(settings)
    if t is None:
        t = tables(store)
    if candidates is None:
        candidates = cap_candidates(t, eng_rules, ("account_id",)).get("account_id")
    out = fits if fits is not None else fit_scores(t, settings)
    # Only what scoring reads: narrower rows are cheaper to scan and stack.
    touches = t.touches.select("account_id", "activity", "ts", "seq", "weight", "topic")
    # the few touches the daily cap cuts, found once and shared by every capped measure
    cuts = cap_cuts(touches, eng_rules, candidates=candidates).cache()
    rows = with_cuts(touches.filter(touches.account_id.notnull()), cuts,
                     ["account_id", "activity", "ts", "topic"])
    if reach is None:
        reach = frame(breadth(t.touches, as_of))
    eng = frame(_measures(rows, "account_id", eng_rules, surge_rules, as_of)).merge(
        reach, on="account_id", how="left")
    topics = frame(surge_from(rows.filter(rows.topic.notnull()), surge_rules, as_of,
                              by_topic=True))
    # ties (to 1e-9: parallel sums differ in their last bits) in name order: the same
    # topics in the same order however the rows came back
    topics["_rank"] = topics["surge"].round(9)
    hot = topics[topics["surging"]].sort_values(["_rank", "topic"], ascending=[False, True],
                                                kind="stable").groupby(
        "account_id")["topic"].agg(list)
    out = out.merge(eng.drop(columns=["base", "expected"]), on="account_id", how="left")
    out["engagement"] = out["engagement"].fillna(0.0)
    out["recent"] = out["recent"].fillna(0.0)
    for col in ("touches", "people", *_COUNTS):
        out[col] = out[col].fillna(0).astype(int)
    out["surge"] = out["surge"].fillna(1.0)
    out["surging"] = out["surging"].fillna(False).astype(bool)
    topics_of = hot.to_dict()
    # an account can surge while no topic does on its own (its rise is spread over
    # several): it is then surging on the topics that rose most, not on nothing
    # (only for those accounts: a per-account list on every account would put a Python
    # loop on the rescore's hot path)
    lacking = set(out.loc[out["surging"], "account_id"]) - set(topics_of)
    rising = topics[topics["account_id"].isin(lacking) & (topics["recent"] > 0)].sort_values(
        ["_rank", "recent", "topic"], ascending=[False, False, True], kind="stable").groupby(
        "account_id").head(3).groupby(
        "account_id")["topic"].agg(list).to_dict() if lacking else {}
    out["surge_topics"] = [topics_of.get(a) or (rising.get(a, []) if surging else [])
                           for a, surging in zip(out["account_id"].tolist(),
                                                 out["surging"].tolist(), strict=True)]
    p = t.predictions
    pred = frame(p.filter(p.model == "fit").select("entity_id", "probability"))
    out["predictive_fit"] = out["account_id"].map(
        dict(zip(pred["entity_id"], pred["probability"], strict=True)))
    # the account score sales sorts by: fit times (1 + log engagement), so a busy good fit
    # ranks first, and among quiet accounts the better fit still ranks higher (most
    # opportunities of the next quarter come from accounts not yet in market: measured in
    # benchmarks/evaluation.py, where this beats fit x log engagement on every seed)
    out["priority"] = priority(out)
    return out


def priority(scores: pd.DataFrame) -> pd.Series:
    """The account score sales sorts by, from *scores*' ``fit`` and ``engagement``:
    ``fit / 100 * (1 + ln(1 + engagement))`` (see :func:`account_scores`)."""
    out: pd.Series = scores["fit"] / 100.0 * (1.0 + np.log1p(scores["engagement"]))
    return out


#: touch counts in recent windows that stage and MQL rules may name
_COUNTS = ("touches_90d", "high_intent_30d", "demo_requests_30d", "forms_30d",
           "meetings_30d")
#: the activities of the 30-day counts: high intent, forms (and demo requests, meetings)
INTENT = ("high_intent_page", "demo_request", "trial")
FORMS = ("form_fill", "webinar_registration")
#: every activity a 30-day count reads (the live rescore's edges, see score.live)
COUNTED_30D = (*INTENT, "meeting_booked", *FORMS)


def _aggregates(x: ir.Table, eng_rules: EngagementRules, surge_rules: SurgeRules,
                as_of: dt.datetime) -> dict[str, ir.Scalar]:
    """Every touch measure as a named Ibis aggregate over :func:`with_cuts` rows up to
    *as_of*: engagement, touches, the surge windows' sums (``recent``, ``base``) and
    :data:`_COUNTS`."""
    d30 = x.ts > ibis.literal(as_of - dt.timedelta(days=30))
    d90 = x.ts > ibis.literal(as_of - dt.timedelta(days=90))
    intent = x.activity.isin(list(INTENT))
    return {
        "engagement": (x.value * decay(x.ts, eng_rules, as_of)).sum(),
        "touches": x.n.sum(),
        **window_sums(x, surge_rules, as_of),
        "touches_90d": d90.ifelse(x.n, 0).sum(),
        "high_intent_30d": (d30 & intent).ifelse(x.n, 0).sum(),
        "demo_requests_30d": (d30 & (x.activity == "demo_request")).ifelse(x.n, 0).sum(),
        "meetings_30d": (d30 & (x.activity == "meeting_booked")).ifelse(x.n, 0).sum(),
        "forms_30d": (d30 & x.activity.isin(list(FORMS)))
        .ifelse(x.n, 0).sum(),
    }


def _measures(rows: ir.Table, entity: str, eng_rules: EngagementRules,
              surge_rules: SurgeRules, as_of: dt.datetime) -> ir.Table:
    """Every measure of :func:`_aggregates` per *entity* in one pass, with the surge
    (``expected``, ``surge``, ``surging``)."""
    x = rows.filter(rows.ts <= as_of)
    agg = x.group_by(x[entity].name(entity)).agg(**_aggregates(x, eng_rules, surge_rules,
                                                              as_of))
    return surge_columns(agg, surge_rules)


def stage_features(store: Store, settings: Settings, as_of: dt.datetime,
                   scores: pd.DataFrame, context: pd.DataFrame | None = None
                   ) -> pd.DataFrame:
    """Every feature a stage rule may name (see stages.ACCOUNT_FEATURES), per account:
    *scores* (:func:`account_scores`) with *context* (:func:`account_context`, found here
    when not given)."""
    if context is None:
        context = account_context(tables(store), settings, as_of)
    f = scores.merge(context, on="account_id", how="left")
    for col in ("won_opportunities", "open_opportunities"):
        f[col] = f[col].fillna(0).astype(int)
    f["target"] = f["target"].fillna(False).astype(bool)
    f["committee_coverage"] = f["committee_coverage"].fillna(0.0)
    roles = list(settings.score.committee.roles)
    f["missing_roles"] = [v if isinstance(v, list) else list(roles)
                          for v in f["missing_roles"].tolist()]
    return f


def account_context(t: Tables, settings: Settings, as_of: dt.datetime,
                    accounts: list[str] | None = None) -> pd.DataFrame:
    """What stage rules read besides the scores, per account known to any part: won and
    open opportunities, target, committee coverage and missing roles (may be NaN); only
    for *accounts* when given."""
    o = t.opportunities.filter(t.opportunities.account_id.notnull()
                               & (t.opportunities.created_at.isnull()
                                  | (t.opportunities.created_at <= as_of)))
    closed_by = o.is_closed & (o.closed_at.isnull() | (o.closed_at <= as_of))
    opps = frame(o.group_by("account_id").agg(
        won_opportunities=(o.won & closed_by).ifelse(1, 0).sum(),
        open_opportunities=(~closed_by).ifelse(1, 0).sum(),
    ))
    targets = frame(t.accounts.select("account_id", "target"))
    if accounts is not None:
        targets = targets[isin(targets["account_id"], accounts)]
    committee = committee_coverage(t, as_of, settings.score.committee.window_days,
                                   list(settings.score.committee.roles), accounts)
    context: pd.DataFrame = targets.merge(opps, on="account_id", how="left").merge(
        committee, on="account_id", how="left")
    return context


def committee_coverage(t: Tables, as_of: dt.datetime, days: int, roles: list[str],
                       accounts: list[str] | None = None) -> pd.DataFrame:
    """:func:`~demandloop.score.committee.coverage` of :func:`engaged_people` (of
    *accounts* only, when given), with the role flags computed by the engine: one row per
    account comes back instead of one per engaged person (500k people: 1.2 s -> 0.4 s)."""
    p = engaged_people(t, as_of, days)
    if accounts is not None:
        chosen = ibis.memtable(pa.table({"account_id": pa.array(accounts, pa.string())}))
        p = p.filter(p.account_id.isin(chosen.account_id))
    rank = p.seniority.cases(*SENIORITY_RANK.items(), else_=-1)
    flags = {}
    for i, role in enumerate(roles):
        function, least = role_condition(role)
        holds = p.job_function == function
        if least is not None:
            holds &= rank >= least
        flags[f"r{i}"] = holds.fill_null(False).any()
    if roles:
        found = frame(p.group_by("account_id").agg(**flags).order_by("account_id"))
    else:  # sorted here: an order_by after distinct() is not safe on Spark (see
        # demandloop.measure.inputs.pipeline_parts)
        found = frame(p.select("account_id").distinct()).sort_values("account_id",
                                                                      ignore_index=True)
    ids = found["account_id"].to_numpy(dtype=object)
    covered = np.column_stack([found[f"r{i}"].to_numpy(dtype=bool)
                               for i in range(len(roles))]) if roles else \
        np.zeros((len(ids), 0), dtype=bool)
    return from_flags(ids, covered, roles)


def engaged_people(t: Tables, as_of: dt.datetime, days: int) -> ir.Table:
    """People of an account with touches in the *days* before *as_of* (Ibis table:
    ``person_id, account_id, seniority, job_function``). A semi-join: joining every touch
    to its person and de-duplicating cost twice as much."""
    x = t.touches
    recent = x.filter((x.ts <= as_of) & (x.ts > ibis.literal(as_of - dt.timedelta(days=days))))
    p = t.persons
    return p.filter(p.account_id.notnull() & p.person_id.isin(recent.person_id)).select(
        "person_id", "account_id", "seniority", "job_function")


def person_measures(t: Tables, settings: Settings, as_of: dt.datetime,
                    candidates: ir.Table | None = None) -> ir.Table:
    """Engagement and the rule counts of every person with touches, as an Ibis table
    (*candidates* as in :func:`account_scores`)."""
    _, eng_rules, surge_rules = rules_from(settings)
    if candidates is None:
        candidates = cap_candidates(t, eng_rules, ("person_id",)).get("person_id")
    touches = t.touches.select("person_id", "activity", "ts", "seq", "weight")
    rows = with_cuts(touches.filter(touches.person_id.notnull()),
                     cap_cuts(touches, eng_rules, "person_id", candidates),
                     ["person_id", "activity", "ts"])
    # only what MQL rules may name (stages.PERSON_FEATURES): a third of the aggregates
    x = rows.filter(rows.ts <= as_of)
    every = _aggregates(x, eng_rules, surge_rules, as_of)
    return x.group_by("person_id").agg(
        **{k: every[k] for k in ("engagement", "demo_requests_30d", "forms_30d",
                                 "meetings_30d")})


def person_features(store: Store, settings: Settings, as_of: dt.datetime,
                    accounts: pd.DataFrame, measures: ir.Table | None = None,
                    t: Tables | None = None
                    ) -> pd.DataFrame:
    """Every feature an MQL rule may name (see stages.PERSON_FEATURES), per person
    (*measures*: :func:`person_measures` on *t*, both found here when not given). People
    and their measures are joined in the database: merging 300k rows in pandas cost 0.4 s.
    """
    if t is None:
        t = tables(store)
    if measures is None:
        measures = person_measures(t, settings, as_of)
    p = t.persons.select("person_id", "account_id", "seniority")
    fits = ibis.memtable(pa.table({"account_id": pa.array(accounts["account_id"].to_numpy(
        dtype=object), pa.string()), "account_fit": accounts["fit"].to_numpy(dtype=float)}))
    m = measures
    f = frame(p.left_join(m, p.person_id == m.person_id)
              .left_join(fits, p.account_id == fits.account_id)
              .select(p.person_id, p.account_id, p.seniority,
                      engagement=m.engagement.fill_null(0.0),
                      demo_requests_30d=m.demo_requests_30d.fill_null(0),
                      forms_30d=m.forms_30d.fill_null(0),
                      meetings_30d=m.meetings_30d.fill_null(0), account_fit=fits.account_fit,
                      seniority_rank=p.seniority.cases(*SENIORITY_RANK.items(),
                                                       else_=ibis.null("int64"))))
    for col in ("demo_requests_30d", "forms_30d", "meetings_30d"):
        f[col] = f[col].astype(int)
    return f

