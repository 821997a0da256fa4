"""What the benchmark sends: a scenario is a market file, a target path and a body generator.

Add a scenario by adding a :class:`Scenario` to :data:`SCENARIOS`. Every market file of the
selected scenarios is loaded before the server starts (``load_market`` is an upsert, so
scenarios can share a file); a scenario with ``buyers=True`` needs the simulated RTB buyers
(``buyers.py``), and its market file is a template whose ``$BUYERS`` ``run.py`` fills in with
their base URL. The generator calls ``body(i)`` for the i-th request of a run, and
``check(status, body)`` on each answer: ``None`` when the answer is what the scenario expects,
else a short label, counted in the report as a bad answer. ``tally(body)``, when given, labels
a good answer (who won, say); the report counts the labels.

A scenario can follow another up, one request for one: the ``post`` of a ping. ``run.py`` then
sends the ``pinged`` scenario's requests first, outside the measured run (neither their time nor
their CPU counts), and ``follow(i, answer)`` makes the i-th request from the i-th answer.
``answer_key(body)`` names a good answer (a lead's id), so the report can match each request with
what the server stored about it.

Pure Python, no Django: the load generator process imports this module (and ``core.pii``, which
is Django-free).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.pii import example_phone

HERE = Path(__file__).resolve().parent
MARKET = HERE / "market.yaml"
SELLER_KEY = "gvl_bench_seller_000000000000"
CAMPAIGN = "cmp_bench"
# The RTB market (a template: run.py fills in the simulated buyers' URL) and its seller.
MARKET_RTB = HERE / "market_rtb.yaml"
RTB_SELLER_KEY = "gvl_bench_rtb_seller_00000000"
RTB_CAMPAIGN = "cmp_bench_rtb"
BUYER_LATENCY_MS = 50.0  # how long each simulated RTB buyer takes to answer
# The post's market (a template too: its buyers take deliveries at the simulated buyers' URL).
MARKET_POST = HERE / "market_post.yaml"
POST_SELLER_KEY = "gvl_bench_post_seller_0000000"
POST_CAMPAIGN = "cmp_bench_post"
POST_OFFER = "bench-post"


@dataclass(frozen=True)
class Scenario:
    name: str
    path: str
    body: Callable[[int], bytes]
    check: Callable[[int, bytes], str | None]
    headers: dict[str, str] = field(default_factory=dict)
    market: Path | None = None
    description: str = ""
    buyers: bool = False  # needs the simulated RTB buyers (and its market file is a template)
    tally: Callable[[bytes], str] | None = None
    pinged: Scenario | None = None  # sent first, unmeasured: this scenario follows its answers up
    follow: Callable[[int, bytes], bytes] | None = None
    answer_key: Callable[[bytes], str] | None = None


# --- the baseline --------------------------------------------------------------------------------


def hello_body(i: int) -> bytes:
    return b"{}"


def hello_check(status: int, body: bytes) -> str | None:
    if status != 200:
        return None  # counted as non-200 already
    return None if body == b'{"hello":"world"}' else "unexpected_body"


# --- the ping ------------------------------------------------------------------------------------

# States the market's filters look at (and some they do not), and zips of a plausible shape.
STATES = ["CA", "TX", "FL", "NY", "IL", "OR", "WA", "NV", "AZ", "OH", "GA", "PA", "NC", "MI", "CO"]


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _lead(i: int) -> dict[str, object]:
    """The i-th lead's ping fields: state, zip and age spread over the market's filters."""
    return {"state": STATES[i % len(STATES)], "zip": f"{10000 + (i * 7919) % 89999:05d}", "age": 18 + (i * 13) % 63}


def _ping_json(i: int, campaign: str, email: str, phone: str) -> bytes:
    """The i-th ping of a consumer known by ``email`` and ``phone`` (hashed as the exchange hashes them)."""
    return json.dumps(
        {
            "campaign": campaign,
            "lead": _lead(i),
            "consumer": {"email_sha256": _sha(email), "phone_sha256": _sha(phone)},
            "tracking": {"sub_id1": f"bench-{i % 10}"},
        },
        separators=(",", ":"),
    ).encode()


def ping_body(i: int, *, campaign: str = CAMPAIGN, consumer: str = "bench.consumer") -> bytes:
    """The i-th ping: a new consumer each time (new hashes, so neither the repeat-ping answer nor
    dedup short-cuts the auction), with state, zip and age spread over the market's filters."""
    return _ping_json(i, campaign, f"{consumer}.{i}@example.com", f"+1{2015550000 + i}")


def _answer_problem(status: int, body: bytes, expected: str) -> tuple[dict[str, Any], str | None]:
    """The answer, and what is wrong with it (None: a 200 whose ``status`` is ``expected``; a
    non-200 is counted as such already)."""
    if status != 200:
        return {}, None
    try:
        answer = json.loads(body)
    except ValueError:
        return {}, "not_json"
    if answer.get("status") != expected:
        return answer, f"status_{answer.get('status')}:{answer.get('reason')}"
    return answer, None


def ping_check(status: int, body: bytes) -> str | None:
    answer, problem = _answer_problem(status, body, "accepted")
    if problem is not None or not answer:
        return problem
    if not answer.get("ping_id", "").startswith("png_") or len(answer.get("bids") or []) != 1:
        return "malformed_answer"
    return None


# --- RTB: the exchange's parallel fan-out, and the sequential ping tree it replaces ----------------


def rtb_ping_body(i: int) -> bytes:
    """The i-th ping of the RTB market (the same leads as ``ping``, other consumers)."""
    return ping_body(i, campaign=RTB_CAMPAIGN, consumer="bench.rtb.consumer")


def ping_tree_check(status: int, body: bytes) -> str | None:
    """The baseline's answer: a winner (like a ping's, ``accepted`` with one bid)."""
    if status != 200:
        return None
    try:
        answer = json.loads(body)
    except ValueError:
        return "not_json"
    if answer.get("status") != "accepted" or not answer.get("winner"):
        return f"status_{answer.get('status')}"
    return None


def ping_tree_tally(body: bytes) -> str:
    """Who won, how many RTB buyers were asked, and which of them failed (timeout, error)."""
    answer = json.loads(body)
    failed = Counter(r for r in answer["rtb_reasons"] if r in ("rtb_timeout", "rtb_error", "rtb_invalid"))
    return f"won_by_{'rtb' if answer['winner']['rtb'] else 'internal'}, {answer['rtb_calls']} RTB asked" + "".join(
        f", {reason} ×{count}" for reason, count in sorted(failed.items())
    )


# --- the post: a lead sold to the winner of its ping ------------------------------------------------

# The consumers of posts need real contacts, each a valid phone: core.pii's fictional numbers.
POST_CONSUMERS = 10_000


def _post_contact(i: int) -> tuple[str, str]:
    if i >= POST_CONSUMERS:
        raise ValueError(f"the post scenario has {POST_CONSUMERS} consumers: lower its rate or duration")
    return f"bench.post.{i}@example.com", example_phone(i)


def post_ping_body(i: int) -> bytes:
    """The ping of the i-th post: the consumer's email and phone hashed as the exchange hashes them
    (normalized: lower-case, E.164)."""
    return _ping_json(i, POST_CAMPAIGN, *_post_contact(i))


def post_body(i: int, ping_answer: bytes) -> bytes:
    """The i-th post: the whole lead of the ping answered by ``ping_answer``, with its consent."""
    email, phone = _post_contact(i)
    return json.dumps(
        {
            "ping_id": json.loads(ping_answer)["ping_id"],
            "lead": {**_lead(i), "email": email, "phone": phone},
            "consent": {"text": "I agree to be contacted.", "captured_at": _now(), "ip": "203.0.113.9"},
        },
        separators=(",", ":"),
    ).encode()


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _made_from_pings(i: int) -> bytes:
    raise RuntimeError("a post's body is made from its ping's answer (Scenario.follow)")


def post_check(status: int, body: bytes) -> str | None:
    return _answer_problem(status, body, "sold")[1]


def lead_id_of(body: bytes) -> str:
    return str(json.loads(body)["lead_id"])


POST_PING = Scenario(
    name="post-ping",
    path="/api/v1/ping",
    body=post_ping_body,
    check=ping_check,
    headers={"Authorization": f"Bearer {POST_SELLER_KEY}"},
    market=MARKET_POST,
    buyers=True,
    description="the pings the post scenario posts (sent before it, not measured)",
)

SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            name="hello",
            path="/bench/hello",
            body=hello_body,
            check=hello_check,
            description="DRF hello-world: same server and framework, no authentication, no business logic",
        ),
        Scenario(
            name="ping",
            path="/api/v1/ping",
            body=ping_body,
            check=ping_check,
            headers={"Authorization": f"Bearer {SELLER_KEY}"},
            market=MARKET,
            description="POST /api/v1/ping, exclusive auction over 30 internally priced contracts",
        ),
        Scenario(
            name="ping-rtb",
            path="/api/v1/ping",
            body=rtb_ping_body,
            check=ping_check,
            headers={"Authorization": f"Bearer {RTB_SELLER_KEY}"},
            market=MARKET_RTB,
            buyers=True,
            description=(
                "POST /api/v1/ping, exclusive auction over 25 internally priced contracts and 5 RTB "
                f"buyers answering in {BUYER_LATENCY_MS:g} ms, asked in parallel"
            ),
        ),
        Scenario(
            name="ping-tree",
            path="/bench/ping-tree",
            body=rtb_ping_body,
            check=ping_tree_check,
            market=MARKET_RTB,
            buyers=True,
            tally=ping_tree_tally,
            description=(
                "the sequential baseline: the same 30 contracts of the RTB market evaluated one after "
                "another, each RTB buyer asked with a blocking POST; best bid returned, nothing stored"
            ),
        ),
        Scenario(
            name="post",
            path="/api/v1/post",
            body=_made_from_pings,
            check=post_check,
            headers={"Authorization": f"Bearer {POST_SELLER_KEY}"},
            market=MARKET_POST,
            buyers=True,
            pinged=POST_PING,
            follow=post_body,
            answer_key=lead_id_of,
            description=(
                "POST /api/v1/post of a lead pinged beforehand: exclusive, sold to one of 8 buyers whose "
                "endpoint (the simulated buyers) takes the delivery at once; one capped, one short of funds"
            ),
        ),
    )
}
BASELINE = "hello"
