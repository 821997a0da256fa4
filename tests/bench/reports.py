"""Reports at scale (issue 15): ``make bench-reports``.

1. The 30-day report of a seller with a million pings: synthetic rollups for 30 days (720 hours ×
   20 campaigns × 10 sub_id1 values × 7 pings ≈ 1 008 000 pings), then the median of 9 runs of
   ``report_of(group_by=day,campaign)``; the target is < 300 ms.
2. The fold's rate: ``--pings`` synthetic pings (default 50 000, each with a 5-contract waterfall)
   inserted, then one ``rollups_fold`` timed; pings folded per second, the target ≥ 300/s.

Writes to the database of DATABASE_URL (migrated first); use a scratch database.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "exchange.settings")
os.environ.setdefault("DEBUG", "1")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.utils import timezone  # noqa: E402

from accounts.tenancy import market_scope  # noqa: E402
from contracts.models import BuyerContract, Campaign  # noqa: E402
from exchange.market import market_load  # noqa: E402
from exchange.models import Ping  # noqa: E402
from reporting.models import Rollup  # noqa: E402
from reporting.reports import SELLER, report_of  # noqa: E402
from reporting.rollups import rollups_fold  # noqa: E402
from tests.exchange.builder import buyer, market  # noqa: E402

START = datetime(2026, 11, 1, tzinfo=UTC)


def setup() -> tuple[list[Campaign], list[BuyerContract]]:
    call_command("migrate", verbosity=0)
    data = market(*[buyer(f"bench-b{i}", "10.00") for i in range(5)])
    seller = next(o for o in data["organizations"] if o["slug"] == "seller")
    seller["campaigns"] = [{"slug": f"bench-c{i}", "id": f"cmp_bench{i}", "offer": "auto"} for i in range(20)]
    market_load(data)
    with market_scope():
        return list(Campaign.objects.filter(public_id__startswith="cmp_bench")), list(BuyerContract.objects.all())


def report_latency(campaigns: list[Campaign], runs: int) -> float:
    Rollup.objects.filter(seller=campaigns[0].organization).delete()
    rows = [
        Rollup(
            hour=START + timedelta(hours=h),
            seller_id=c.organization_id,
            offer_id=c.offer_id,
            campaign=c,
            sub_id1=f"s{s}",
            pings=7,
            accepted=5,
            posted=2,
            sold=1,
            payout=Decimal("8.00"),
        )
        for h in range(720)
        for c in campaigns
        for s in range(10)
    ]
    Rollup.objects.bulk_create(rows, batch_size=5000)
    seller = campaigns[0].organization
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        report = report_of(
            organization=seller,
            side=SELLER,
            start=date(2026, 11, 1),
            end=date(2026, 11, 30),
            group_by=["day", "campaign"],
        )
        timings.append((time.perf_counter() - started) * 1000)
    print(f"rows {len(rows)}, pings {report.totals['pings']}, report rows {len(report.rows)}")
    return statistics.median(timings)


def fold_rate(campaigns: list[Campaign], contracts: list[BuyerContract], count: int) -> float:
    rollups_fold(now=timezone.now())  # fold what is there first
    now = timezone.now() - timedelta(minutes=5)
    steps = [{"contract": c.public_id, "organization": c.organization_id, "reason": "outbid"} for c in contracts]
    with market_scope():
        Ping.objects.bulk_create(
            [
                Ping(
                    organization_id=campaigns[0].organization_id,
                    campaign=campaigns[i % len(campaigns)],
                    offer_id=campaigns[0].offer_id,
                    status="accepted",
                    tracking={"sub_id1": f"s{i % 10}"},
                    fingerprint=f"bench{i}",
                    waterfall=steps,
                    expires_at=now,
                    created_at=now - timedelta(seconds=i % 3600),
                )
                for i in range(count)
            ],
            batch_size=5000,
        )
    started = time.perf_counter()
    folded = rollups_fold(now=timezone.now())
    elapsed = time.perf_counter() - started
    print(f"folded {folded.pings} ping ids in {elapsed:.2f} s")
    return count / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--pings", type=int, default=50_000)
    args = parser.parse_args()
    campaigns, contracts = setup()
    latency = report_latency(campaigns, args.runs)
    print(f"30-day report, median of {args.runs}: {latency:.1f} ms (target < 300 ms)")
    rate = fold_rate(campaigns, contracts, args.pings)
    print(f"fold: {rate:.0f} pings/s (target >= 300/s)")


if __name__ == "__main__":
    main()
