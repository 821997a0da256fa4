"""Simulated publisher traffic for the demo: the demo market's three sellers selling through the
real HTTP API (DESIGN.md §6 and §10).

:func:`traffic_run` acts as LeadGen Co, QuoteForge Media and Sunpath Leads (their fixed API keys
and campaign ids are in ``exchange/fixtures/demo_market.yaml``) and sends, over real HTTP with
the standard library's ``urllib`` only, a mix of:

- pings then posts (about 60%), each post with a consent record, some with an
  ``Idempotency-Key`` and one or more of those retried with the same key (which must replay);
- full leads, ``POST /api/v1/leads`` (about 25%);
- repeats of an earlier consumer through another seller (about 10%): sold again to a buyer that
  has not bought them yet, or rejected as a duplicate when every buyer that would bid has;
- a few solar pings no contract takes (renters outside the sun belt): rejected ``no_buyers``;
- bad inputs (about 5-8%, see :data:`BAD_INPUTS`), each of which must get its documented 4xx.

Guarantees:

- Deterministic given ``seed``: the consumers, the mix, its order, the sellers, campaigns and
  which posts carry an ``Idempotency-Key`` are a pure function of ``(leads, seed)``
  (:func:`traffic_plan`). Only what must be fresh on every run varies: consent timestamps,
  click ids and idempotency keys (derived from the server's ping ids).
- Requests are sent one after the other, never concurrently (SQLite takes one writer at a time).
- Consumers are fictional: emails at ``example.com``/``.net``/``.org``, phones from
  :func:`core.pii.example_phone` (NANPA 555-01xx) in an area code of the consumer's state,
  ZIP codes with a real three-digit prefix of that state, consent IPs in 203.0.113.0/24.
- Every answer is checked against the documented shapes; a 5xx, an undocumented shape, a valid
  request refused, or a bad input answered with anything but its documented status and code is a
  *problem* in the report, never an exception. The function raises only for invalid arguments.

This module does not import Django, so it runs against any Gavel server.
"""

from __future__ import annotations

import http.client
import json
import random
import re
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from core.pii import EXAMPLE_AREA_CODES, email_hash, example_phone, phone_hash

__all__ = [
    "BAD_INPUTS",
    "DEFAULT_LEADS",
    "DEFAULT_SEED",
    "GEO",
    "MAX_LEADS",
    "SELLERS",
    "USER_AGENT",
    "BadInputResult",
    "Consumer",
    "Seller",
    "Step",
    "TrafficReport",
    "server_wait",
    "traffic_plan",
    "traffic_run",
]

DEFAULT_LEADS = 60
DEFAULT_SEED = 7
MAX_LEADS = 2000
REQUEST_TIMEOUT_S = 30.0  # above SQLite's 20 s lock wait, so a slow answer is still an answer
USER_AGENT = "gavel-demo-traffic/1.0"  # the sellers' servers; consumers' browsers are in the consent

# Each bad input and the answer DESIGN.md §6 documents for it: (HTTP status, error.code).
BAD_INPUTS: dict[str, tuple[int, str]] = {
    "pii_in_ping": (422, "validation_error"),  # an email and a phone in a ping's lead
    "post_mismatch": (422, "ping_mismatch"),  # the post's email is not the one the ping hashed
    "malformed_json": (400, "malformed_json"),  # a truncated body
    "replayed_post": (409, "ping_already_posted"),  # a posted ping posted again (no idempotency key)
    "unknown_campaign": (422, "validation_error"),  # a typo in the campaign id
}
PING_REJECT_REASONS = frozenset(
    {"no_buyers", "duplicate", "suppressed", "below_min_score", "campaign_paused", "offer_paused"}
)
LEAD_STATUSES = frozenset({"sold", "unsold", "pending", "rejected"})
LEAD_REJECT_REASONS = frozenset({"duplicate", "suppressed"})
_MONEY = re.compile(r"^\d+\.\d{2}$")
_PING_KEYS = frozenset({"ping_id", "status", "reason", "payout", "bids", "expires_at", "test"})
_LEAD_KEYS = frozenset({"lead_id", "ping_id", "status", "reason", "payout", "redirect_url", "test"})


# --- the demo market's sellers --------------------------------------------------------------------


@dataclass(frozen=True)
class Seller:
    """One demo seller: its API key, its campaign per offer and what its traffic looks like."""

    slug: str
    name: str
    key: str
    campaigns: Mapping[str, str]  # offer slug -> campaign public id
    weight: int
    site: str
    sources: tuple[str, ...]
    consent_proof: str  # "trustedform", "jornaya", "both" or "none"


SELLERS: tuple[Seller, ...] = (
    Seller(
        slug="leadgen",
        name="LeadGen Co",
        key="gvl_demo_leadgen_0000000000000",
        campaigns={"auto": "cmp_leadgen_auto", "solar": "cmp_leadgen_solar"},
        weight=45,
        site="https://quotes.leadgen.example",
        sources=("google", "bing", "google", "organic"),
        consent_proof="both",
    ),
    Seller(
        slug="quoteforge",
        name="QuoteForge Media",
        key="gvl_demo_quoteforge_0000000000",
        campaigns={"auto": "cmp_quoteforge_auto"},
        weight=30,
        site="https://www.quoteforge.example",
        sources=("facebook", "instagram", "tiktok"),
        consent_proof="none",
    ),
    Seller(
        slug="sunpath",
        name="Sunpath Leads",
        key="gvl_demo_sunpath_0000000000000",
        campaigns={"auto": "cmp_sunpath_auto", "solar": "cmp_sunpath_solar"},
        weight=25,
        site="https://www.sunpath.example",
        sources=("email", "native", "youtube"),
        consent_proof="trustedform",
    ),
)
_SOLAR_SHARE = 0.35  # of a solar-selling seller's fresh leads

# --- fictional but plausible consumers ------------------------------------------------------------

# Where consumers live: state, weight (share of traffic), then cities as "name, ZIP prefix, area
# codes" (each area code in EXAMPLE_AREA_CODES, so phones are fictional 555-01xx numbers).
_GEO_TABLE = """
CA 22 | Los Angeles, 900, 213 | San Francisco, 941, 415 | San Jose, 951, 408 | San Diego, 921, 619
      | Santa Rosa, 954, 707 | Anaheim, 928, 714 | Santa Barbara, 931, 805
TX 14 | Dallas, 752, 214 | Houston, 770, 713 | Austin, 787, 512 | Beaumont, 777, 409 | Lubbock, 794, 806
FL 12 | Miami, 331, 305 | Orlando, 328, 407 | Tampa, 336, 813
NY 10 | New York, 100, 212 | Brooklyn, 112, 718 | Hempstead, 115, 516 | Albany, 122, 518
      | Syracuse, 132, 315 | Binghamton, 139, 607 | Buffalo, 142, 716
WA 7  | Seattle, 981, 206 | Spokane, 992, 509
IL 4  | Chicago, 606, 312 708 | Springfield, 627, 217 | Peoria, 616, 309 | Carbondale, 629, 618
AZ 3  | Phoenix, 850, 602
PA 3  | Philadelphia, 191, 215 | Pittsburgh, 152, 412 | Harrisburg, 171, 717
OH 3  | Cleveland, 441, 216 | Toledo, 436, 419 | Cincinnati, 452, 513 | Columbus, 432, 614
GA 3  | Atlanta, 303, 404 | Augusta, 309, 706
NV 2  | Las Vegas, 891, 702
OR 2  | Portland, 972, 503
NJ 2  | Jersey City, 073, 201 | Trenton, 086, 609
MI 2  | Detroit, 482, 313 | Lansing, 489, 517 | Grand Rapids, 495, 616 | Flint, 485, 810
CO 2  | Denver, 802, 303 | Colorado Springs, 809, 719
MA 2  | Boston, 021, 617 | Springfield, 011, 413 | Worcester, 016, 508
NC 2  | Charlotte, 282, 704
VA 2  | Arlington, 222, 703 | Richmond, 232, 804
TN 1  | Nashville, 372, 615
MN 1  | Minneapolis, 554, 612
UT 1  | Salt Lake City, 841, 801
"""

City = tuple[str, str, tuple[str, ...]]  # (name, ZIP prefix, area codes)


def _geo_parse(table: str) -> dict[str, tuple[int, tuple[City, ...]]]:
    geo: dict[str, tuple[int, list[City]]] = {}
    state = ""
    for line in table.strip().splitlines():
        head, *cities = (part.strip() for part in line.split("|"))
        if head:
            state, weight = head.split()
            geo[state] = (int(weight), [])
        for city in cities:
            name, zip3, codes = (part.strip() for part in city.split(","))
            geo[state][1].append((name, zip3, tuple(codes.split())))
    return {state: (weight, tuple(cities)) for state, (weight, cities) in geo.items()}


# state -> (weight, cities)
GEO = _geo_parse(_GEO_TABLE)
SUN_BELT = frozenset({"CA", "AZ", "NV", "TX", "FL"})
_FIRST_NAMES = (
    "Maria James Aisha Wei Carlos Emily Daniel Priya Jamal Sofia Michael Hannah Luis Grace Omar "
    "Olivia Kevin Mei Andre Chloe Diego Fatima Ryan Nora Tyrone Elena Marcus Ava Hiroshi Leah"
).split()
_LAST_NAMES = (
    "Garcia Smith Johnson Nguyen Patel Williams Lopez Kim Brown Rodriguez Chen Davis Martinez "
    "Okafor Wilson Anderson Hernandez Thompson Singh Moore Jackson Rivera Clark Walker Young Tanaka"
).split()
_EMAIL_DOMAINS = ("example.com", "example.com", "example.net", "example.org", "mail.example.com")
_USER_AGENTS = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 15; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/130.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.0 Safari/605.1.15",
)
_CONSENT_TEXT = (
    'By clicking "{button}", I agree that {seller} and its partners may contact me at the number '
    "I provided, including by autodialed calls and text messages, about {topic}. Consent is not a "
    "condition of purchase. Message and data rates may apply."
)


@dataclass(frozen=True)
class Consumer:
    """A fictional consumer as a form captured them (email and phone as typed)."""

    first_name: str
    last_name: str
    email: str  # as typed: may carry capitals, the API normalizes it
    phone: str  # E.164
    phone_typed: str  # as typed on the form, e.g. "(415) 555-0123"
    city: str
    state: str
    zip: str
    age: int
    homeowner: bool | None  # None: the form did not ask (auto only; solar always asks)
    vehicles: int
    coverage: str
    monthly_bill: str

    @property
    def hashes(self) -> dict[str, str]:
        """The ping's ``consumer``: SHA-256 of the normalized email and of the E.164 phone."""
        return {"email_sha256": email_hash(self.email), "phone_sha256": phone_hash(self.phone)}

    def ping_fields(self, offer: str) -> dict[str, Any]:
        """The offer's ping fields (no PII), as the demo market defines them."""
        if offer == "solar":
            return {
                "state": self.state,
                "zip": self.zip,
                "homeowner": bool(self.homeowner),
                "monthly_bill": self.monthly_bill,
            }
        fields: dict[str, Any] = {"state": self.state, "zip": self.zip, "age": self.age}
        if self.homeowner is not None:
            fields["homeowner"] = self.homeowner
        fields.update(vehicles=self.vehicles, coverage=self.coverage)
        return fields

    def lead_fields(self, offer: str) -> dict[str, Any]:
        """Every field of the offer: the ping fields and the PII."""
        pii: dict[str, Any] = {"email": self.email, "phone": self.phone_typed, "first_name": self.first_name}
        if offer == "auto":
            pii["last_name"] = self.last_name
        return {**self.ping_fields(offer), **pii}


@dataclass(frozen=True)
class Step:
    """One lead of the plan: who sends what, how.

    ``kind`` is ``ping_post``, ``full_lead``, ``no_buyers`` (a ping no contract takes),
    ``repeat`` (``repeat_of`` is the index of the earlier step whose consumer comes back) or
    ``bad`` (``bad`` names the entry of :data:`BAD_INPUTS`). ``via`` is how a sale is attempted:
    ``ping_post`` or ``full_lead``.
    """

    index: int
    kind: str
    seller: Seller
    offer: str
    consumer: Consumer
    via: str
    bad: str | None = None
    repeat_of: int | None = None
    idempotency_key: bool = False  # send the post with an Idempotency-Key
    retry: bool = False  # then send it again with the same key, as after a network timeout
    source: str = ""
    user_agent: str = ""
    ip: str = ""


class _PhoneBook:
    """Hands out distinct :func:`example_phone` numbers, preferring the given area codes."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._used: set[int] = set()
        self._next: dict[str, int] = {}

    def take(self, area_codes: Sequence[str]) -> str:
        for code in area_codes:
            base = EXAMPLE_AREA_CODES.index(code) * 100
            start = self._next.setdefault(code, self._rng.randrange(100))
            for offset in range(100):
                n = base + (start + offset) % 100
                if n not in self._used:
                    self._used.add(n)
                    self._next[code] = (start + offset + 1) % 100
                    return example_phone(n)
        start = self._rng.randrange(len(EXAMPLE_AREA_CODES) * 100)
        total = len(EXAMPLE_AREA_CODES) * 100
        for offset in range(total):
            n = (start + offset) % total
            if n not in self._used:
                self._used.add(n)
                return example_phone(n)
        raise ValueError("no fictional phone numbers left")


def _typed_phone(rng: random.Random, e164: str) -> str:
    area, exchange, line = e164[2:5], e164[5:8], e164[8:]
    return rng.choice((e164, f"({area}) {exchange}-{line}", f"{area}-{exchange}-{line}", f"{area}.{exchange}.{line}"))


def _consumer(
    rng: random.Random,
    phones: _PhoneBook,
    emails: set[str],
    *,
    offer: str,
    states: Sequence[str] | None = None,
    homeowner: bool | None = None,
) -> Consumer:
    pool = [s for s in GEO if states is None or s in states]
    state = rng.choices(pool, weights=[GEO[s][0] for s in pool])[0]
    city, zip3, area_codes = rng.choice(GEO[state][1])
    first, last = rng.choice(_FIRST_NAMES), rng.choice(_LAST_NAMES)
    while True:
        pattern = rng.randrange(4)
        local = (
            f"{first}.{last}",
            f"{first[0]}{last}{rng.randint(1, 99)}",
            f"{first}{last}{rng.randint(60, 99)}",
            f"{first}_{last[0]}{rng.randint(100, 999)}",
        )[pattern]
        email = f"{local}@{rng.choice(_EMAIL_DOMAINS)}"
        if rng.random() >= 0.2:  # most forms lower-case; some keep what the consumer typed
            email = email.lower()
        if email.lower() not in emails:
            emails.add(email.lower())
            break
    phone = phones.take(area_codes)
    if homeowner is None:
        if offer == "solar":
            homeowner = rng.random() < 0.85
        elif rng.random() >= 0.15:  # some auto forms do not ask
            homeowner = rng.random() < 0.62
    return Consumer(
        first_name=first,
        last_name=last,
        email=email,
        phone=phone,
        phone_typed=_typed_phone(rng, phone),
        city=city,
        state=state,
        zip=f"{zip3}{rng.randint(1, 99):02d}",
        age=max(18, min(80, round(rng.triangular(18, 80, 36)))),
        homeowner=homeowner,
        vehicles=rng.choices((1, 2, 3, 4), weights=(45, 35, 15, 5))[0],
        coverage=rng.choices(("minimum", "standard", "premium"), weights=(25, 50, 25))[0],
        monthly_bill=f"{rng.uniform(70, 320):.2f}",
    )


def _mix(leads: int) -> dict[str, int]:
    """How many of each kind a run of ``leads`` sends (they add up to ``leads``)."""
    counts = {
        "bad": round(leads / 12),
        "repeat": round(leads * 0.10),
        "no_buyers": round(leads * 0.05),
        "full_lead": round(leads * 0.25),
    }
    counts["ping_post"] = leads - sum(counts.values())
    return counts


def traffic_plan(leads: int = DEFAULT_LEADS, seed: int = DEFAULT_SEED) -> list[Step]:
    """The leads a run sends, in order: a pure function of ``(leads, seed)``.

    Guarantees: exactly ``leads`` steps; the first is a ping then post; repeats and bad inputs
    never come before the first few fresh leads, and a repeat always names an earlier fresh step
    (half of them, when possible, a solar homeowner in the sun belt, whom every solar buyer buys
    at once, so the repeat is a duplicate); every consumer of a fresh step has a distinct email
    and phone; bad inputs cycle through :data:`BAD_INPUTS` in its order. Raises ``ValueError``
    unless ``0 <= leads <= MAX_LEADS``.
    """
    if isinstance(leads, bool) or not isinstance(leads, int) or not 0 <= leads <= MAX_LEADS:
        raise ValueError(f"leads must be an integer from 0 to {MAX_LEADS}.")
    rng = random.Random(seed)  # noqa: S311 - simulated traffic, not cryptography  # nosec B311
    mix = _mix(leads)
    fresh = ["ping_post"] * mix["ping_post"] + ["full_lead"] * mix["full_lead"] + ["no_buyers"] * mix["no_buyers"]
    rng.shuffle(fresh)
    if "ping_post" in fresh:  # open with the main path
        fresh.insert(0, fresh.pop(fresh.index("ping_post")))
    bad_kinds = list(BAD_INPUTS)
    specials = ["repeat"] * mix["repeat"] + [f"bad:{bad_kinds[i % len(bad_kinds)]}" for i in range(mix["bad"])]
    rng.shuffle(specials)
    order = list(fresh)
    warm = min(len(order), max(3, leads // 5))
    for special in specials:
        order.insert(rng.randint(warm, len(order)), special)

    phones, emails = _PhoneBook(rng), set[str]()
    sellers_weights = [s.weight for s in SELLERS]
    solar_sellers = [s for s in SELLERS if "solar" in s.campaigns]
    steps: list[Step] = []
    repeats = 0
    for index, kind in enumerate(order):
        seller = rng.choices(SELLERS, weights=sellers_weights)[0]
        common: dict[str, Any] = {
            "source": rng.choice(seller.sources),
            "user_agent": rng.choice(_USER_AGENTS),
            "ip": f"203.0.113.{rng.randint(1, 254)}",
        }
        if kind in ("ping_post", "full_lead"):
            offer = "solar" if "solar" in seller.campaigns and rng.random() < _SOLAR_SHARE else "auto"
            consumer = _consumer(rng, phones, emails, offer=offer)
            keyed = kind == "ping_post" and rng.random() < 0.35
            retry = keyed and rng.random() < 0.35
            steps.append(Step(index, kind, seller, offer, consumer, kind, idempotency_key=keyed, retry=retry, **common))
        elif kind == "no_buyers":
            seller = rng.choice(solar_sellers)
            common["source"] = rng.choice(seller.sources)
            outside = sorted(set(GEO) - SUN_BELT)
            consumer = _consumer(rng, phones, emails, offer="solar", states=outside, homeowner=False)
            steps.append(Step(index, kind, seller, "solar", consumer, "ping_post", **common))
        elif kind == "repeat":
            originals = [s for s in steps if s.kind in ("ping_post", "full_lead")]
            sunny = [
                s for s in originals if s.offer == "solar" and s.consumer.homeowner and s.consumer.state in SUN_BELT
            ]
            autos = [s for s in originals if s.offer == "auto"]
            repeated = {s.repeat_of for s in steps if s.kind == "repeat"}
            preferred = [s for s in (sunny if repeats % 2 == 0 else autos) if s.index not in repeated]
            target = rng.choice(preferred or originals)
            repeats += 1
            others = [s for s in SELLERS if target.offer in s.campaigns and s is not target.seller]
            seller = rng.choice(others) if others else target.seller
            common["source"] = rng.choice(seller.sources)
            via = rng.choice(("ping_post", "full_lead"))
            steps.append(
                Step(index, kind, seller, target.offer, target.consumer, via, repeat_of=target.index, **common)
            )
        else:
            bad = kind.removeprefix("bad:")
            consumer = _consumer(rng, phones, emails, offer="auto")
            steps.append(Step(index, "bad", seller, "auto", consumer, "ping_post", bad=bad, **common))
    if not any(s.retry for s in steps):  # show an idempotent retry in every run that has a keyed post
        keyed_steps = [s for s in steps if s.idempotency_key]
        if keyed_steps:
            steps[keyed_steps[0].index] = replace(keyed_steps[0], retry=True)
    return steps


# --- the report -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class BadInputResult:
    """A bad input, the answer DESIGN.md §6 documents for it, and the answer it got."""

    kind: str
    expected_status: int
    expected_code: str
    status: int | None  # None: no answer (connection error) or not sent
    code: str | None

    @property
    def ok(self) -> bool:
        return (self.status, self.code) == (self.expected_status, self.expected_code)


@dataclass
class TrafficReport:
    """What a run sent and what the exchange answered.

    ``outcomes`` counts each lead's final outcome once: ``sold``, ``unsold:<reason>``,
    ``pending``, ``rejected:<reason>`` (at ping or at post/full lead) or ``error:<status> <code>``
    (bad inputs, and any valid request the API refused). ``payout`` is the sum of the payouts of
    the sold leads as the API reported them. ``problems`` lists every unexpected answer (5xx, an
    undocumented shape, a refused valid request, a bad input answered otherwise than documented,
    an idempotent retry not replayed); an empty list means the run went as documented.
    """

    base_url: str
    seed: int
    leads: int = 0
    requests: int = 0
    sent: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    payout: Decimal = Decimal("0.00")
    bad_inputs: list[BadInputResult] = field(default_factory=list)
    idempotent_replays: int = 0
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def sold(self) -> int:
        return self.outcomes["sold"]

    @property
    def ok(self) -> bool:
        return not self.problems

    def count(self, prefix: str) -> int:
        """How many leads have an outcome starting with ``prefix`` (e.g. ``"rejected:"``)."""
        return sum(n for key, n in self.outcomes.items() if key.startswith(prefix))

    def summary(self) -> str:
        """One line, e.g. ``60 leads sent — 41 sold ($1,024.80), 5 unsold, … ``."""
        parts = [f"{self.sold} sold (${self.payout:,.2f} to sellers)"]
        if self.count("unsold"):
            parts.append(f"{self.count('unsold')} unsold")
        if self.outcomes["pending"]:
            parts.append(f"{self.outcomes['pending']} pending")
        rejected = {k.split(":", 1)[1]: n for k, n in self.outcomes.items() if k.startswith("rejected:")}
        if rejected:
            reasons = ", ".join(f"{n} {reason.replace('_', ' ')}" for reason, n in sorted(rejected.items()))
            parts.append(f"{sum(rejected.values())} rejected ({reasons})")
        if self.bad_inputs:
            good = sum(1 for b in self.bad_inputs if b.ok)
            parts.append(
                f"{len(self.bad_inputs)} bad inputs refused with their documented 4xx"
                if good == len(self.bad_inputs)
                else f"{good} of {len(self.bad_inputs)} bad inputs refused as documented"
            )
        if self.idempotent_replays:
            retries = "retry" if self.idempotent_replays == 1 else "retries"
            parts.append(f"{self.idempotent_replays} idempotent {retries} replayed")
        if self.problems:
            parts.append(f"{len(self.problems)} PROBLEM{'S' if len(self.problems) > 1 else ''}")
        return f"{self.leads} leads sent — " + ", ".join(parts)


# --- HTTP -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Answer:
    status: int
    body: Any  # the parsed JSON, or None when the body is not JSON
    text: str
    headers: Mapping[str, str]

    @property
    def error_code(self) -> str | None:
        error = self.body.get("error") if isinstance(self.body, dict) else None
        return error.get("code") if isinstance(error, dict) and isinstance(error.get("code"), str) else None


class _Unreachable(Exception):
    pass


def _check_base_url(base_url: str) -> str:
    if not re.match(r"^https?://[^/\s]+$", base_url.rstrip("/")):
        raise ValueError(f"base_url must look like http://host:port, not {base_url!r}.")
    return base_url.rstrip("/")


def server_wait(url: str, *, timeout: float = 20.0, interval: float = 0.25) -> bool:
    """Poll ``url`` with GET until it answers (any HTTP status) or ``timeout`` seconds pass.

    Returns True as soon as the server answers, False if it never did. Never raises for network
    errors.
    """
    if not re.match(r"^https?://", url):
        raise ValueError("url must be http:// or https://")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + timeout
    while True:
        try:
            with opener.open(url, timeout=max(0.5, min(5.0, deadline - time.monotonic()))):
                return True
        except urllib.error.HTTPError as exc:
            exc.close()
            return True
        except (OSError, ValueError):
            pass
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def _ping_shape(data: Any) -> str | None:
    """What is wrong with a ping answer, or None if it has the documented shape."""
    if not isinstance(data, dict) or not _PING_KEYS <= set(data):
        missing = sorted(_PING_KEYS - set(data)) if isinstance(data, dict) else type(data).__name__
        return f"missing {missing}"
    if not str(data["ping_id"]).startswith("png_"):
        return "ping_id is not png_…"
    if not isinstance(data["payout"], str) or not _MONEY.match(data["payout"]):
        return f"payout {data['payout']!r} is not money"
    bids = data["bids"]
    if not isinstance(bids, list) or any(
        not isinstance(b, dict)
        or not {"bid_id", "payout"} <= set(b)
        or not str(b["bid_id"]).startswith("bid_")
        or not _MONEY.match(str(b["payout"]))
        for b in bids
    ):
        return f"bids {bids!r} are not [{{bid_id, payout}}]"
    if data["status"] == "accepted":
        if data["reason"] is not None or not bids:
            return "accepted with a reason or without bids"
        if sum(Decimal(b["payout"]) for b in bids) != Decimal(data["payout"]):
            return "payout is not the sum of the bids' payouts"
    elif data["status"] == "rejected":
        if data["reason"] not in PING_REJECT_REASONS or bids:
            return f"rejected with reason {data['reason']!r} and {len(bids)} bids"
    else:
        return f"status {data['status']!r}"
    return None


def _lead_shape(data: Any) -> str | None:
    """What is wrong with a post or full-lead answer, or None if it has the documented shape."""
    if not isinstance(data, dict) or not _LEAD_KEYS <= set(data):
        missing = sorted(_LEAD_KEYS - set(data)) if isinstance(data, dict) else type(data).__name__
        return f"missing {missing}"
    if not str(data["lead_id"]).startswith("led_"):
        return "lead_id is not led_…"
    if data["status"] not in LEAD_STATUSES:
        return f"status {data['status']!r}"
    if not isinstance(data["payout"], str) or not _MONEY.match(data["payout"]):
        return f"payout {data['payout']!r} is not money"
    payout = Decimal(data["payout"])
    if data["status"] == "sold" and (payout <= 0 or data["reason"] is not None):
        return f"sold with payout {data['payout']} and reason {data['reason']!r}"
    if data["status"] == "rejected" and data["reason"] not in LEAD_REJECT_REASONS:
        return f"rejected with reason {data['reason']!r}"
    if data["status"] in ("unsold", "rejected") and payout != 0:
        return f"{data['status']} with payout {data['payout']}"
    return None


def _error_shape(data: Any) -> str | None:
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(data, dict) or set(data) != {"error"} or not isinstance(error, dict):
        return "not {error: {code, message}}"
    if not isinstance(error.get("code"), str) or not isinstance(error.get("message"), str):
        return "error without a code and a message"
    if not set(error) <= {"code", "message", "fields"}:
        return f"error keys {sorted(error)}"
    return None


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _Run:
    """One run's state: the HTTP client, the report, what earlier steps left behind."""

    def __init__(self, base_url: str, report: TrafficReport, log: Callable[[str], None]) -> None:
        self.base = base_url
        self.report = report
        self.log = log
        self.opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        self.token = format(time.time_ns() // 1_000_000 % 16**8, "08x")  # fresh click ids per run
        self.last_post: tuple[Seller, dict[str, Any]] | None = None
        self.last_sold: tuple[Seller, str, str] | None = None  # seller, lead id, payout
        self.unreachable = 0

    # -- requests

    def send(
        self,
        method: str,
        path: str,
        seller: Seller,
        *,
        body: Any = None,
        raw: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> _Answer:
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        request = urllib.request.Request(  # noqa: S310 - the scheme was checked in traffic_run
            self.base + path,
            data=data,
            method=method,
            headers={
                "Authorization": f"Bearer {seller.key}",
                "Accept": "application/json",
                "User-Agent": f"{USER_AGENT} ({seller.slug})",
                **({"Content-Type": "application/json"} if data is not None else {}),
                **(headers or {}),
            },
        )
        self.report.requests += 1
        try:
            with self.opener.open(request, timeout=REQUEST_TIMEOUT_S) as response:
                status, text, answer_headers = response.status, response.read().decode(), dict(response.headers)
        except urllib.error.HTTPError as exc:
            with exc:
                status, text, answer_headers = exc.code, exc.read().decode(errors="replace"), dict(exc.headers)
        except (OSError, http.client.HTTPException) as exc:
            self.unreachable += 1
            raise _Unreachable(f"{method} {path}: no answer ({exc})") from exc
        self.unreachable = 0
        try:
            parsed = json.loads(text) if text else None
        except ValueError:
            parsed = None
        return _Answer(status, parsed, text, answer_headers)

    # -- bookkeeping

    def problem(self, step: Step, what: str) -> None:
        self.report.problems.append(f"lead {step.index + 1} ({step.kind}, {step.seller.slug}): {what}")

    def refused(self, step: Step, what: str, answer: _Answer) -> str:
        """A valid request answered with an error: a problem; returns the outcome key."""
        self.problem(step, f"{what} answered {answer.status}: {_short(answer.text)}")
        return f"error:{answer.status} {answer.error_code or 'unknown'}"

    # -- bodies

    def tracking(self, step: Step) -> dict[str, Any]:
        return {
            "sub_id1": step.source,
            "sub_id2": f"{step.offer}-{step.consumer.state.lower()}",
            "click_id": f"{step.seller.slug[:2]}-{self.token}-{step.index:04d}",
        }

    def ping_consent(self, step: Step) -> dict[str, Any]:
        proof = step.seller.consent_proof
        rng = random.Random(f"{self.report.seed}:{step.index}:proof")  # noqa: S311 - fake certificate ids  # nosec B311
        consent: dict[str, Any] = {}
        if proof in ("trustedform", "both"):
            consent["trusted_form_cert_url"] = f"https://cert.trustedform.com/{rng.getrandbits(160):040x}"
        if proof in ("jornaya", "both"):
            consent["jornaya_leadid"] = str(_random_uuid(rng)).upper()
        return consent

    def consent(self, step: Step) -> dict[str, Any]:
        topic = "auto insurance quotes" if step.offer == "auto" else "solar energy for my home"
        button = "Get my quotes" if step.offer == "auto" else "See my savings"
        captured = datetime.now(UTC) - timedelta(seconds=4)
        page = f"{step.seller.site}/{'auto-insurance' if step.offer == 'auto' else 'solar'}?utm_source={step.source}"
        return {
            "text": _CONSENT_TEXT.format(button=button, seller=step.seller.name, topic=topic),
            "captured_at": captured.isoformat(timespec="seconds").replace("+00:00", "Z"),
            "ip": step.ip,
            "user_agent": step.user_agent,
            "page_url": page,
            **self.ping_consent(step),
        }

    def ping_body(self, step: Step, **overrides: Any) -> dict[str, Any]:
        body = {
            "campaign": step.seller.campaigns[step.offer],
            "test": False,
            "lead": step.consumer.ping_fields(step.offer),
            "consumer": step.consumer.hashes,
            "tracking": self.tracking(step),
        }
        consent = self.ping_consent(step)
        if consent:
            body["consent"] = consent
        body.update(overrides)
        return body

    def lead_body(self, step: Step) -> dict[str, Any]:
        return {
            "campaign": step.seller.campaigns[step.offer],
            "test": False,
            "lead": step.consumer.lead_fields(step.offer),
            "consent": self.consent(step),
            "tracking": self.tracking(step),
        }

    # -- the paths

    def ping(self, step: Step) -> tuple[dict[str, Any] | None, str | None]:
        """(the ping answer, None) or (None, the outcome key when it went wrong)."""
        answer = self.send("POST", "/api/v1/ping", step.seller, body=self.ping_body(step))
        if answer.status != 200:
            return None, self.refused(step, "ping", answer)
        wrong = _ping_shape(answer.body)
        if wrong:
            self.problem(step, f"ping answer: {wrong}: {_short(answer.text)}")
            return None, "error:undocumented ping answer"
        return answer.body, None

    def lead_outcome(self, step: Step, what: str, answer: _Answer) -> str:
        if answer.status != 200:
            return self.refused(step, what, answer)
        wrong = _lead_shape(answer.body)
        if wrong:
            self.problem(step, f"{what} answer: {wrong}: {_short(answer.text)}")
            return "error:undocumented lead answer"
        data = answer.body
        if data["status"] == "sold":
            self.report.payout += Decimal(data["payout"])
            self.last_sold = (step.seller, data["lead_id"], data["payout"])
            return "sold"
        if data["status"] == "pending":
            return "pending"
        return f"{data['status']}:{data['reason'] or 'none'}"

    def post(self, step: Step, ping_id: str) -> str:
        body = {"ping_id": ping_id, "lead": step.consumer.lead_fields(step.offer), "consent": self.consent(step)}
        headers = {"Idempotency-Key": f"post-{ping_id}"} if step.idempotency_key else {}
        answer = self.send("POST", "/api/v1/post", step.seller, body=body, headers=headers)
        outcome = self.lead_outcome(step, "post", answer)
        if answer.status == 200:
            self.last_post = (step.seller, body)
        if step.retry and answer.status == 200:
            again = self.send("POST", "/api/v1/post", step.seller, body=body, headers=headers)
            replayed = again.headers.get("Idempotent-Replayed", again.headers.get("idempotent-replayed"))
            if again.status != 200 or again.body != answer.body or replayed != "true":
                self.problem(
                    step,
                    f"a retry with the same Idempotency-Key answered {again.status} (Idempotent-Replayed: "
                    f"{replayed}) {_short(again.text)} instead of replaying {_short(answer.text)}",
                )
            else:
                self.report.idempotent_replays += 1
        return outcome

    def sell(self, step: Step) -> str:
        if step.via == "full_lead":
            answer = self.send("POST", "/api/v1/leads", step.seller, body=self.lead_body(step))
            return self.lead_outcome(step, "full lead", answer)
        data, failed = self.ping(step)
        if data is None:
            return failed or "error:ping"
        if data["status"] == "rejected":
            return f"rejected:{data['reason']}"  # a seller does not post a ping nobody bid on
        return self.post(step, data["ping_id"])

    def bad(self, step: Step) -> str:
        assert step.bad is not None
        expected_status, expected_code = BAD_INPUTS[step.bad]
        answer: _Answer | None = None
        fields_expected: str | None = None
        if step.bad == "pii_in_ping":
            lead = {**step.consumer.ping_fields("auto"), "email": step.consumer.email, "phone": step.consumer.phone}
            answer = self.send("POST", "/api/v1/ping", step.seller, body=self.ping_body(step, lead=lead))
            fields_expected = "lead.email"
        elif step.bad == "post_mismatch":
            data, failed = self.ping(step)
            if data is None:
                return failed or "error:ping"
            local, _, domain = step.consumer.email.partition("@")
            other = "example.net" if domain.lower() != "example.net" else "example.com"
            lead = {
                **step.consumer.lead_fields("auto"),
                "email": f"{local}@{other}",
            }  # fixed on the form after the ping
            body = {"ping_id": data["ping_id"], "lead": lead, "consent": self.consent(step)}
            answer = self.send("POST", "/api/v1/post", step.seller, body=body)
            fields_expected = "lead.email"
        elif step.bad == "malformed_json":
            text = json.dumps(self.lead_body(step))
            answer = self.send("POST", "/api/v1/leads", step.seller, raw=text[: len(text) // 2].encode())
        elif step.bad == "replayed_post":
            if self.last_post is None:
                self.log(f"lead {step.index + 1}: no earlier post to replay; skipped")
                self.report.bad_inputs.append(BadInputResult(step.bad, expected_status, expected_code, None, None))
                return "skipped:nothing to replay"
            seller, body = self.last_post
            answer = self.send("POST", "/api/v1/post", seller, body=body)  # a retry loop without a key
        elif step.bad == "unknown_campaign":
            campaign = step.seller.campaigns["auto"].replace("_auto", "_atuo")
            answer = self.send("POST", "/api/v1/ping", step.seller, body=self.ping_body(step, campaign=campaign))
            fields_expected = "campaign"
        else:  # pragma: no cover - BAD_INPUTS and this method list the same kinds
            raise AssertionError(step.bad)
        code = answer.error_code
        result = BadInputResult(step.bad, expected_status, expected_code, answer.status, code)
        self.report.bad_inputs.append(result)
        wrong_shape = _error_shape(answer.body) if answer.status >= 400 else None
        fields = answer.body.get("error", {}).get("fields") if isinstance(answer.body, dict) else None
        if not result.ok:
            self.problem(
                step,
                f"bad input {step.bad} answered {answer.status} {code} instead of "
                f"{expected_status} {expected_code}: {_short(answer.text)}",
            )
        elif wrong_shape:
            self.problem(step, f"bad input {step.bad}: error answer {wrong_shape}: {_short(answer.text)}")
        elif fields_expected and (not isinstance(fields, dict) or fields_expected not in fields):
            self.problem(
                step, f"bad input {step.bad}: error.fields does not name {fields_expected}: {_short(answer.text)}"
            )
        return f"error:{answer.status} {code or 'unknown'}"

    def check_lead_detail(self) -> None:
        """``GET /api/v1/leads/{id}`` of the last sold lead says what its post said."""
        if self.last_sold is None:
            return
        seller, lead_id, payout = self.last_sold
        answer = self.send("GET", f"/api/v1/leads/{lead_id}", seller)
        body = answer.body if isinstance(answer.body, dict) else {}
        if answer.status != 200 or body.get("status") != "sold" or body.get("payout") != payout:
            self.report.problems.append(
                f"GET /api/v1/leads/{lead_id} answered {answer.status} {_short(answer.text)}; "
                f"its post said sold for {payout}"
            )


def _random_uuid(rng: random.Random) -> str:
    """A version-4-shaped UUID drawn from ``rng`` (reproducible, unlike :func:`uuid.uuid4`)."""
    value = rng.getrandbits(128)
    text = f"{value:032x}"
    return f"{text[:8]}-{text[8:12]}-4{text[13:16]}-a{text[17:20]}-{text[20:32]}"


def _describe(step: Step, outcome: str) -> str:
    who = f"{step.seller.slug:<10} {step.offer:<5} {step.consumer.state} {step.consumer.zip}"
    what = (
        step.bad
        if step.kind == "bad"
        else (f"repeat of lead {(step.repeat_of or 0) + 1}" if step.kind == "repeat" else step.kind)
    )
    return f"lead {step.index + 1:>3}: {who} {what} via {step.via} -> {outcome}"


def traffic_run(
    base_url: str,
    *,
    leads: int = DEFAULT_LEADS,
    seed: int = DEFAULT_SEED,
    log: Callable[[str], None] = print,
) -> TrafficReport:
    """Send :func:`traffic_plan` ``(leads, seed)`` to the exchange at ``base_url`` and report.

    Requests go one at a time over real HTTP (``urllib``, proxies bypassed), as the demo
    market's sellers. ``log`` gets one line per lead. Never raises for what the server answers
    (see :class:`TrafficReport`); stops early, with a problem, after three requests in a row got
    no answer at all. Raises ``ValueError`` for a malformed ``base_url`` or ``leads``.
    """
    base = _check_base_url(base_url)
    steps = traffic_plan(leads, seed)
    report = TrafficReport(base_url=base, seed=seed)
    run = _Run(base, report, log)
    started = time.monotonic()
    for step in steps:
        try:
            outcome = run.bad(step) if step.kind == "bad" else run.sell(step)
        except _Unreachable as exc:
            outcome = "error:no answer"
            run.problem(step, str(exc))
        report.leads += 1
        report.sent[f"bad:{step.bad}" if step.bad else step.kind] += 1
        report.outcomes[outcome] += 1
        log(_describe(step, outcome))
        if run.unreachable >= 3:
            report.problems.append(
                f"the server at {base} stopped answering; {len(steps) - report.leads} leads not sent"
            )
            break
    else:
        try:
            run.check_lead_detail()
        except _Unreachable as exc:
            report.problems.append(str(exc))
    report.seconds = time.monotonic() - started
    return report
