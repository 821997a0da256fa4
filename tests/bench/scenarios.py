"""What the benchmark sends: a scenario is a market file, a target path and a body generator.

Add a scenario by adding a :class:`Scenario` to :data:`SCENARIOS` (an RTB one would bring its
own market file, whose contracts carry ``rtb_url``, and a campaign id of its own). Every market
file of the selected scenarios is loaded before the server starts (``load_market`` is an upsert,
so scenarios can share a file). The generator calls ``body(i)`` for the i-th request of a run,
and ``check(status, body)`` on each answer: ``None`` when the answer is what the scenario
expects, else a short label, counted in the report as a bad answer.

Pure Python, no Django: the load generator process imports this module.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
MARKET = HERE / "market.yaml"
SELLER_KEY = "gvl_bench_seller_000000000000"
CAMPAIGN = "cmp_bench"


@dataclass(frozen=True)
class Scenario:
    name: str
    path: str
    body: Callable[[int], bytes]
    check: Callable[[int, bytes], str | None]
    headers: dict[str, str] = field(default_factory=dict)
    market: Path | None = None
    description: str = ""


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


def ping_body(i: int) -> bytes:
    """The i-th ping: a new consumer each time (new hashes, so neither the repeat-ping answer nor
    dedup short-cuts the auction), with state, zip and age spread over the market's filters."""
    state = STATES[i % len(STATES)]
    return json.dumps(
        {
            "campaign": CAMPAIGN,
            "lead": {"state": state, "zip": f"{10000 + (i * 7919) % 89999:05d}", "age": 18 + (i * 13) % 63},
            "consumer": {
                "email_sha256": _sha(f"bench.consumer.{i}@example.com"),
                "phone_sha256": _sha(f"+1{2015550000 + i}"),
            },
            "tracking": {"sub_id1": f"bench-{i % 10}"},
        },
        separators=(",", ":"),
    ).encode()


def ping_check(status: int, body: bytes) -> str | None:
    if status != 200:
        return None
    try:
        answer = json.loads(body)
    except ValueError:
        return "not_json"
    if answer.get("status") != "accepted":
        return f"status_{answer.get('status')}:{answer.get('reason')}"
    if not answer.get("ping_id", "").startswith("png_") or len(answer.get("bids") or []) != 1:
        return "malformed_answer"
    return None


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
    )
}
BASELINE = "hello"
