"""Personas from job titles: seniority and function, by ordered rules.

Titles are messy ("Sr. Dir., Demand Gen & ABM", "VP Sales EMEA", "Head of RevOps"), so each
title is normalised (lower case, abbreviations expanded) and then matched against two ordered
registries of small regex rules; the first match wins. ``tests/data/personas.csv`` holds the
golden cases (real-world spellings -> expected seniority and function).

Seniority: ``c_level``, ``vp``, ``director``, ``manager``, ``individual_contributor``.
Functions: ``executive``, ``marketing``, ``sales``, ``revenue_operations``, ``customer_success``,
``product``, ``engineering``, ``it``, ``data``, ``finance``, ``hr``, ``legal``, ``operations``,
or ``other``.

Example:
    >>> classify_title("Sr. Director, Demand Generation")
    ('director', 'marketing')
"""

from __future__ import annotations

import re
from functools import lru_cache

_ABBREVIATIONS = [
    (r"\bsr\b\.?", "senior"), (r"\bjr\b\.?", "junior"), (r"\bdir\b\.?", "director"),
    (r"\bmgr\b\.?", "manager"), (r"\bmktg\b", "marketing"), (r"\bmkt\b", "marketing"),
    (r"\bops\b", "operations"), (r"\brevops\b", "revenue operations"),
    (r"\bmops\b", "marketing operations"), (r"\bsalesops\b", "sales operations"),
    (r"\bgtm\b", "go to market"), (r"\bbiz ?dev\b", "business development"),
    (r"\bhr\b", "human resources"), (r"\bexec\b\.?", "executive"),
    (r"\bassoc\b\.?", "associate"), (r"\bmgmt\b", "management"), (r"\bengr?\b", "engineer"),
    (r"\bdev\b", "developer"), (r"\bfp&a\b", "financial planning and analysis"),
    (r"&", " and "), (r"\bv\.p\.?", "vp"),
]

# seniority rules, first match wins
_SENIORITY: list[tuple[str, str]] = [
    ("vp", r"\b(vp|vice president|svp|evp|avp)\b"),
    ("c_level", r"\b(chief [a-z ]*officer|ceo|cmo|cro|cfo|cto|cio|coo|cpo|ciso|cdo|cco|"
                r"founder|co-?founder|owner|president|managing director|managing partner|"
                r"general partner|partner and ceo)\b"),
    ("vp", r"\b(general manager|gm)\b"),
    ("director", r"\b(director|head of|head,|\bhead\b|principal)\b"),
    ("manager", r"\b(manager|lead|team lead|supervisor|management)\b"),
]

# function rules, first match wins (order matters: "sales operations" before "sales")
_FUNCTION: list[tuple[str, str]] = [
    ("revenue_operations", r"\b(revenue operations|sales operations|go to market operations|"
                           r"salesforce (administrator|admin)|crm (administrator|admin|manager)|"
                           r"sales enablement|deal desk|business systems)\b"),
    ("executive", r"\b(ceo|chief executive|founder|co-?founder|owner|(?<!vice )president|"
                  r"managing director|general manager|gm|managing partner|coo|"
                  r"chief operating)\b"),
    ("it", r"\b(marketing technology|martech)\b"),
    ("marketing", r"\b(marketing|marketer|cmo|demand gen\w*|growth|brand|content|seo|sem|"
                  r"campaigns?|abm|account based|digital|communications|public relations|pr|"
                  r"social media|"
                  r"events?|field marketing|product marketing|lifecycle|email marketing|"
                  r"creative|copywriter|web(site)? (manager|producer)|community)\b"),
    ("sales", r"\b(sales|cro|chief revenue|account executive|ae|business development|bdr|sdr|"
              r"account manager|account director|inside sales|revenue|partner\w*|"
              r"channel|alliances|commercial)\b"),
    ("customer_success", r"\b(customer success|customer experience|chief customer|support|"
                         r"customer service|"
                         r"implementation|onboarding|client services)\b"),
    ("product", r"\b(product manager|product owner|product management|cpo|chief product|"
                r"product director|vp product|head of product|product)\b"),
    ("engineering", r"\b(engineer\w*|developer|software|cto|chief technology|architect|"
                    r"devops|sre|programmer|technical lead)\b"),
    ("data", r"\b(data|analytics|business intelligence|bi|insights|data scien\w*)\b"),
    ("it", r"\b(it|information technology|cio|chief information|systems? administrator|"
           r"sysadmin|infrastructure|network|security|ciso|help ?desk|technology|"
           r"martech|marketing technology)\b"),
    ("finance", r"\b(finance|financial|cfo|chief financial|accounting|accountant|controller|"
                r"treasury|procurement|purchasing|buyer|fp and a|financial planning)\b"),
    ("hr", r"\b(human resources|people|talent|recruit\w*|hiring|chief people|chro)\b"),
    ("legal", r"\b(legal|counsel|attorney|lawyer|compliance|privacy|general counsel)\b"),
    ("operations", r"\b(operations|supply chain|logistics|facilities|procurement)\b"),
]


@lru_cache(maxsize=1)
def _compiled() -> tuple[list[tuple[str, re.Pattern[str]]], list[tuple[str, re.Pattern[str]]]]:
    return ([(k, re.compile(p)) for k, p in _SENIORITY],
            [(k, re.compile(p)) for k, p in _FUNCTION])


def normalise_title(title: str) -> str:
    t = f" {title.lower()} "
    for pattern, repl in _ABBREVIATIONS:
        t = re.sub(pattern, repl, t)
    return re.sub(r"[^a-z0-9&+ -]+", " ", t).strip()


@lru_cache(maxsize=65536)
def classify_title(title: str | None) -> tuple[str | None, str | None]:
    """(seniority, function) for a job title; (None, None) for an empty one."""
    if not isinstance(title, str) or not title.strip():
        return None, None
    t = normalise_title(title)
    seniority_rules, function_rules = _compiled()
    seniority = next((k for k, p in seniority_rules if p.search(t)), "individual_contributor")
    function = next((k for k, p in function_rules if p.search(t)), "other")
    if function == "executive" and seniority not in ("c_level", "vp"):
        seniority = "c_level"
    return seniority, function
