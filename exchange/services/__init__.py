"""The market's writes: receive a ping, a post or a full lead; reserve, sell or release.

Each public service owns its transactions and runs the cross-tenant parts under
:func:`accounts.tenancy.market_scope`. Answers are cut to what the seller may see.

- :mod:`.pings` — validate a ping, run the auction, store the ping, its bids and waterfall;
- :mod:`.selling` — sell a lead to one contract (reserve, deliver, book or release) and route it
  through a ping's bids;
- :mod:`.intake` — posts, full leads, background re-auctions and the sweeper.
"""

from exchange.services.intake import lead_reauction_run, lead_receive, market_sweep, post_receive
from exchange.services.pings import (
    STANDBY_BIDS,
    LeadRequest,
    PingAnswer,
    PingRequest,
    PostRequest,
    StoredAuction,
    ping_cache_keys,
    ping_fingerprint,
    ping_receive,
)
from exchange.services.selling import (
    LeadAnswer,
    LeadPackage,
    RouteOutcome,
    SaleAttempt,
    lead_route,
    sale_attempt,
    sale_release,
)

__all__ = [
    "STANDBY_BIDS",
    "LeadAnswer",
    "PingAnswer",
    "SaleAttempt",
    "StoredAuction",
    "LeadPackage",
    "LeadRequest",
    "PingRequest",
    "PostRequest",
    "RouteOutcome",
    "lead_reauction_run",
    "lead_receive",
    "lead_route",
    "market_sweep",
    "ping_cache_keys",
    "ping_receive",
    "ping_fingerprint",
    "post_receive",
    "sale_attempt",
    "sale_release",
]
