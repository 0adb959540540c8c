"""Static vocabularies of the simulated B2B market: industries, titles, pages, channels.

The simulated vendor is *Loopwise* (loopwise.io), a B2B marketing-analytics product. Its ideal
customer is a mid-sized software, financial-services or professional-services company in an
English-speaking or northern-European market that already runs Salesforce or HubSpot.
"""

from __future__ import annotations

VENDOR_DOMAIN = "loopwise.io"
BRAND_TERMS = ("loopwise",)

# industry -> (ICP weight, revenue per employee in USD)
INDUSTRIES: dict[str, tuple[float, float]] = {
    "Software": (1.6, 260_000),
    "Financial Services": (1.1, 420_000),
    "Professional Services": (0.9, 180_000),
    "Telecommunications": (0.5, 380_000),
    "Healthcare": (-0.2, 150_000),
    "Manufacturing": (-0.4, 230_000),
    "Retail": (-0.6, 190_000),
    "Media": (0.2, 210_000),
    "Education": (-1.0, 90_000),
    "Logistics": (-0.5, 200_000),
    "Energy": (-0.7, 520_000),
    "Government": (-1.4, 120_000),
}

# country -> (share of accounts, ICP weight, UTC offset hours, top-level domain)
COUNTRIES: dict[str, tuple[float, float, int, str]] = {
    "US": (0.38, 0.6, -5, "com"),
    "GB": (0.12, 0.5, 0, "co.uk"),
    "DE": (0.10, 0.3, 1, "de"),
    "CA": (0.06, 0.5, -5, "ca"),
    "NL": (0.05, 0.4, 1, "nl"),
    "AU": (0.05, 0.4, 10, "com.au"),
    "FR": (0.07, 0.0, 1, "fr"),
    "BR": (0.07, -0.6, -3, "com.br"),
    "IN": (0.06, -0.7, 5, "in"),
    "SG": (0.04, 0.1, 8, "sg"),
}

# technology -> (adoption base rate, ICP weight)
TECHNOLOGIES: dict[str, tuple[float, float]] = {
    "Salesforce": (0.35, 0.8),
    "HubSpot": (0.30, 0.6),
    "Marketo": (0.12, 0.4),
    "Segment": (0.10, 0.5),
    "Snowflake": (0.15, 0.3),
    "Google Analytics": (0.70, 0.0),
    "Zendesk": (0.25, 0.0),
    "Shopify": (0.12, -0.5),
    "AWS": (0.45, 0.1),
    "Microsoft Dynamics": (0.10, -0.2),
}

NAME_HEADS = (
    "North", "Bright", "Blue", "Silver", "Iron", "Clear", "Swift", "Green", "True", "Red",
    "Stone", "Oak", "Summit", "Harbor", "Maple", "Vertex", "Nova", "Atlas", "Lumen", "Cedar",
    "Apex", "Pioneer", "Crest", "Delta", "Echo", "Falcon", "Granite", "Horizon", "Juniper",
    "Keystone", "Lark", "Meridian", "Nimbus", "Orbit", "Pinnacle", "Quartz", "River", "Sage",
    "Tidal", "Union", "Vantage", "Willow", "Zenith", "Copper", "Amber", "Signal", "Beacon",
)
NAME_TAILS = (
    "wave", "peak", "stack", "works", "field", "line", "point", "bridge", "forge", "gate",
    "path", "stone", "light", "scale", "shift", "spark", "labs", "core", "loop", "grid",
    "bay", "ridge", "port", "view", "wise", "ware", "flow", "mark", "well", "side",
)
NAME_SUFFIXES = ("", "", "", " Systems", " Group", " Technologies", " Partners", " Health",
                 " Financial", " Logistics", " Media", " Industries")

FIRST_NAMES = (
    "James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda", "David",
    "Elizabeth", "William", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas",
    "Sarah", "Charles", "Karen", "Daniel", "Lisa", "Matthew", "Nancy", "Anthony", "Sandra",
    "Mark", "Ashley", "Paul", "Emily", "Steven", "Donna", "Andrew", "Michelle", "Joshua",
    "Carol", "Kevin", "Amanda", "Brian", "Melissa", "Priya", "Arjun", "Wei", "Mei", "Lukas",
    "Sophie", "Jonas", "Lea", "Mateo", "Lucia", "Hiroshi", "Yuki", "Olivia", "Noah", "Emma",
    "Liam", "Ana", "Pedro", "Fatima", "Omar",
)
LAST_NAMES = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez",
    "Martinez", "Hernandez", "Lopez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore",
    "Jackson", "Martin", "Lee", "Thompson", "White", "Harris", "Clark", "Lewis", "Walker",
    "Young", "Allen", "King", "Wright", "Scott", "Green", "Baker", "Adams", "Nelson", "Hill",
    "Mueller", "Schmidt", "Schneider", "Fischer", "Weber", "Silva", "Santos", "Oliveira",
    "Patel", "Sharma", "Singh", "Chen", "Wang", "Li", "Tanaka", "Sato", "Dubois", "Bernard",
    "Jansen", "de Vries", "O'Brien", "Murphy", "Kowalski", "Nowak",
)

PERSONAL_DOMAINS = ("gmail.com", "yahoo.com", "outlook.com", "hotmail.com", "icloud.com",
                    "proton.me", "hey.com", "aol.com", "gmx.de")

# buying-committee roles: (role, seniority, function, title spellings, buying weight)
ROLES: tuple[tuple[str, str, str, tuple[str, ...], float], ...] = (
    ("economic_buyer", "c_level", "marketing",
     ("Chief Marketing Officer", "CMO", "Chief Revenue Officer", "CRO"), 1.0),
    ("economic_buyer", "vp", "marketing",
     ("VP Marketing", "Vice President of Marketing", "VP, Demand Generation",
      "VP of Growth Marketing"), 1.0),
    ("champion", "director", "marketing",
     ("Director of Demand Generation", "Director, Marketing Operations",
      "Head of Demand Gen", "Sr. Director Growth Marketing"), 1.4),
    ("champion", "director", "revenue_operations",
     ("Director of Revenue Operations", "Head of RevOps", "Director, Sales Operations"), 1.3),
    ("user", "manager", "marketing",
     ("Marketing Operations Manager", "Demand Generation Manager", "ABM Manager",
      "Sr. Manager, Digital Marketing", "Growth Marketing Manager"), 1.2),
    ("user", "individual_contributor", "marketing",
     ("Marketing Specialist", "Marketing Ops Analyst", "Content Marketing Specialist",
      "Digital Marketing Coordinator"), 0.8),
    ("user", "manager", "sales",
     ("Sales Development Manager", "Inside Sales Manager", "Regional Sales Manager"), 0.7),
    ("user", "individual_contributor", "sales",
     ("Sales Development Representative", "SDR", "Account Executive", "BDR"), 0.5),
    ("technical", "manager", "it",
     ("IT Manager", "Marketing Technology Manager", "Data Engineering Manager"), 0.6),
    ("technical", "individual_contributor", "it",
     ("Data Engineer", "Systems Administrator", "Salesforce Administrator"), 0.5),
    ("finance", "director", "finance",
     ("Finance Director", "Director of FP&A", "Procurement Manager"), 0.4),
)

TOPICS = ("account-based-marketing", "intent-data", "lead-scoring", "attribution",
          "revenue-operations", "email-deliverability")

# page kind -> paths
PAGES: dict[str, tuple[str, ...]] = {
    "blog": tuple(f"/blog/{t}-{n}" for t in TOPICS for n in ("guide", "trends", "checklist")),
    "guide": tuple(f"/guides/{t}" for t in TOPICS),
    "home": ("/",),
    "product": ("/product", "/product/scoring", "/product/attribution", "/product/abm"),
    "integrations": ("/integrations/salesforce", "/integrations/hubspot",
                     "/integrations/segment"),
    "case_study": tuple(f"/customers/{i.lower().replace(' ', '-')}" for i in INDUSTRIES),
    "pricing": ("/pricing",),
    "demo": ("/demo",),
    "webinar": tuple(f"/webinars/{t}" for t in TOPICS[:3]),
    "careers": ("/careers", "/careers/engineering"),
}
HIGH_INTENT = frozenset({"pricing", "demo", "integrations", "case_study", "product"})

# channel -> (motion, share of sessions out of market, share in market)
CHANNELS: dict[str, tuple[str, float, float]] = {
    "organic_search": ("demand", 0.22, 0.12),
    "paid_social": ("demand", 0.14, 0.08),
    "organic_social": ("demand", 0.06, 0.03),
    "ai_assistant": ("demand", 0.05, 0.07),
    "display": ("demand", 0.06, 0.03),
    "webinar": ("demand", 0.04, 0.05),
    "referral": ("demand", 0.04, 0.04),
    "branded_search": ("capture", 0.04, 0.16),
    "paid_search": ("capture", 0.07, 0.09),
    "email": ("capture", 0.08, 0.09),
    "direct": ("capture", 0.14, 0.18),
    "outbound": ("sales", 0.06, 0.06),
}

# planted effect of one session from a channel on the daily hazard of becoming in-market
CHANNEL_EFFECTS: dict[str, float] = {
    "webinar": 0.9, "ai_assistant": 0.7, "organic_search": 0.35, "paid_social": 0.3,
    "referral": 0.4, "organic_social": 0.2, "display": 0.1,
}

USER_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
)

REPS = ("ana.silva", "ben.carter", "chloe.nguyen", "diego.ramos", "erin.walsh", "femi.adeyemi")
OPEN_STAGES = ("Discovery", "Solution Design", "Proposal", "Negotiation")
