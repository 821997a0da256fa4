"""A big book: a ping's CPU against the number of contracts on its offer, and the book's compile.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/gavel REDIS_URL=redis://127.0.0.1:6379/0 \
        .venv/bin/python tests/bench/bigbook.py [--sizes 30,300,3000,30000] [--pings 100] [--rounds 3]

A script, not a test (``make bench-bigbook``). Its own world (the PostgreSQL database
``gavel_bigbook``, Redis database 8): the benchmark's market, plus one offer per book size, each
with a campaign of the benchmark's seller and that many internally priced contracts spread over
the market's 30 buyers. Every contract takes one of 20 groups of the market: the even ones filter
on a state (``state eq``), the odd ones on ten ZIP codes (``zip in``); each ping's lead is of one
group, so 95 % of the book is filtered out by state or ZIP and 5 % bids (with a daily cap and a
dedup window, so their live state is read). The 30-contract benchmark ping (``ping``, the market of
``make bench``, where most contracts bid) is measured beside them.

Pings go through Django's whole request handling with the test client, in rounds: each round
runs every size once, in a rotating order. The figure is the process's CPU per ping
(``time.process_time``: PostgreSQL's and Redis's own work is not in it), the median over the rounds
with its min–max, and its ratio to the 30-contract book's median. Then the book: how long
building it takes from nothing, and rebuilding it after one contract changed.

Writes ``tests/bench/results/bigbook.md`` and ``docs/img/bigbook.svg`` (CPU against contracts).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.bench.ablation import world  # noqa: E402
from tests.bench.scenarios import _sha  # noqa: E402

DATABASE = "gavel_bigbook"
REDIS_DB = 8
GROUPS = 20
STATES = ["CA", "TX", "FL", "NY", "IL", "OR", "WA", "NV", "AZ", "OH"]
STATES += ["GA", "PA", "NC", "MI", "CO", "NJ", "VA", "MA", "TN", "IN"]


def _zips(group: int) -> list[str]:
    return [f"{10000 + group * 100 + k:05d}" for k in range(10)]


def _filters(i: int) -> dict[str, object]:
    group = i % GROUPS
    if (i // GROUPS) % 2 == 0:
        return {"field": "state", "op": "eq", "value": STATES[group]}
    return {"field": "zip", "op": "in", "value": _zips(group)}


def _books(sizes: list[int]) -> dict[int, str]:
    """One offer per size, a copy of the benchmark's, with a campaign and ``size`` contracts."""
    from accounts.models import Organization
    from accounts.tenancy import market_scope
    from contracts.models import BuyerContract, Campaign
    from core.ids import public_id_new
    from exchange.auction.book import book_invalidate
    from exchange.models import Offer

    with market_scope():
        template = Offer.objects.get(slug="bench-auto")
        campaign = Campaign.objects.get(public_id="cmp_bench")
        buyers = list(Organization.objects.filter(slug__startswith="bench-b").order_by("slug"))
        campaigns = {}
        for size in sizes:
            offer = Offer.objects.get(pk=template.pk)
            offer.pk, offer.slug, offer.name = None, f"big-{size}", f"Big book of {size}"
            offer.save()
            own = Campaign.objects.get(pk=campaign.pk)
            own.pk, own.slug, own.offer = None, f"big-{size}", offer
            own.public_id, own.source_token = public_id_new("cmp_"), public_id_new("src_", length=16)
            own.save()
            campaigns[size] = own.public_id
            BuyerContract.objects.bulk_create(
                (
                    BuyerContract(
                        organization=buyers[i % len(buyers)],
                        offer=offer,
                        public_id=public_id_new("ctr_"),
                        slug=f"big-{size}-{i}",
                        name=f"Big {size} #{i}",
                        price=Decimal(5) + Decimal(i % 400) / 10,
                        filters=_filters(i),
                        cap_day=1_000_000,
                    )
                    for i in range(size)
                ),
                batch_size=2000,
            )
    book_invalidate()
    return campaigns


def _ping(i: int, campaign: str) -> bytes:
    group = (i * 7) % GROUPS
    lead = {"state": STATES[group], "zip": _zips(group)[i % 10], "age": 18 + (i * 13) % 63}
    consumer = {"email_sha256": _sha(f"big.{i}@example.com"), "phone_sha256": _sha(f"+1{3015550000 + i}")}
    return json.dumps({"campaign": campaign, "lead": lead, "consumer": consumer}).encode()


def _plot(medians: dict[int, float], base: float, path: Path) -> None:
    import pygal

    sizes = sorted(medians)
    chart = pygal.Line(
        title="CPU per ping against contracts on the offer (95 % filtered out)",
        x_title="contracts on the offer (each step × 10)",
        y_title="ms of CPU per ping",
        x_labels=[f"{size:,}".replace(",", " ") for size in sizes],
        legend_at_bottom=True,
        truncate_legend=-1,
        dots_size=4,
        width=720,
        height=420,
    )
    chart.add("ping", [round(medians[size], 2) for size in sizes])
    chart.add("1.5 × the 30-contract book", [round(base * 1.5, 2)] * len(sizes))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(chart.render())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="30,300,3000,30000")
    parser.add_argument("--pings", type=int, default=100, help="pings per size per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    os.environ.update(world(DATABASE, REDIS_DB))
    import django

    django.setup()
    from django.test import Client

    import exchange.auction.book as book
    from accounts.tenancy import market_scope
    from contracts.models import BuyerContract
    from tests.bench.scenarios import SELLER_KEY, ping_body

    campaigns = _books(sizes)
    client = Client(HTTP_AUTHORIZATION=f"Bearer {SELLER_KEY}")
    counter = iter(range(10**9))

    def run(size: int, n: int) -> float:
        started = time.process_time()
        for _ in range(n):
            i = next(counter)
            body = ping_body(i) if size == 0 else _ping(i, campaigns[size])
            response = client.post("/api/v1/ping", body, content_type="application/json")
            assert response.status_code == 200, response.content[:300]
        return (time.process_time() - started) / n * 1000

    started = time.perf_counter()
    book.book_current()
    build_s = time.perf_counter() - started
    names = [0, *sizes]  # 0: the benchmark's own 30-contract ping
    for size in names:
        run(size, 20)  # warm: connections, prepared statements
    results: dict[int, list[float]] = {size: [] for size in names}
    for round_ in range(args.rounds):
        for size in names[round_ % len(names) :] + names[: round_ % len(names)]:
            results[size].append(run(size, args.pings))

    with market_scope():
        contract = BuyerContract.objects.filter(offer__slug=f"big-{max(sizes)}").first()
    assert contract is not None
    rebuilds, waits = [], []
    for k in range(3):
        with market_scope():
            contract.price = Decimal(7) + k
            contract.save(update_fields=["price", "updated_at"])
            book.book_invalidate()
        before = book._book
        started = time.perf_counter()
        book.book_current()  # what the first ping after the change waits for
        waits.append(time.perf_counter() - started)
        while book._book is before:  # rebuilt behind the pings (a book this big) or by the call above
            time.sleep(0.001)
        rebuilds.append(time.perf_counter() - started)

    medians = {size: statistics.median(figures) for size, figures in results.items()}
    base = medians[sizes[0]]
    lines = [
        f"CPU per ping, median of {args.rounds} rounds of {args.pings} pings (min–max), ratio to the "
        f"{sizes[0]}-contract book; 95 % of each book filtered out by state or ZIP.",
        "",
        "| contracts on the offer | ms CPU per ping | ratio |",
        "|--:|--:|--:|",
        f"| 30, the `make bench` market (most bid) | {medians[0]:.3f} ({min(results[0]):.3f}–{max(results[0]):.3f}) "
        f"| {medians[0] / base:.2f} |",
    ]
    for size in sizes:
        figures = results[size]
        lines.append(
            f"| {size} | {medians[size]:.3f} ({min(figures):.3f}–{max(figures):.3f}) | {medians[size] / base:.2f} |"
        )
    total = sum(sizes) + 30
    lines += [
        "",
        f"Building the whole book ({total} contracts) from nothing (a process does it before it opens its "
        f"port): {build_s:.2f} s. After one contract changed, the first ping waited "
        f"{statistics.median(waits) * 1000:.1f} ms and the new book was in place after "
        f"{statistics.median(rebuilds):.3f} s (medians of 3; {min(rebuilds):.3f}–{max(rebuilds):.3f}).",
    ]
    report = "\n".join(lines)
    print(report)
    results_dir = ROOT / "tests/bench/results"
    (results_dir / "bigbook.md").write_text(report + "\n")
    _plot({size: medians[size] for size in sizes}, base, ROOT / "docs/img/bigbook.svg")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
