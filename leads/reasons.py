"""Reason codes in words: the one place the portal (pages and CSV exports) turns a code into text.

Three vocabularies, each read by the side that sees it:

* ``bid`` — why one of a buyer's contracts did or did not bid on a ping (a ping's waterfall, the
  buyer's Bids page): ``filtered:state``, ``cap_reached:day``, ``outbid``…;
* ``release`` — why a purchase was released instead of sold (``Sale.release_reason``), e.g.
  ``post_rejected: HTTP 500`` or ``stale reservation``;
* ``lead`` — why a seller's lead was rejected or went unsold (``Lead.reason``).

It lives in ``leads``, the lowest app every list showing these codes imports (the seller's
lead list is in ``leads``; the buyer's pages in ``exchange`` and ``billing``). A code not known
here is shown as it is rather than hidden, so a new one is visible until it gets its words.
"""

from __future__ import annotations

from typing import Literal

from contracts.rules import PSEUDO_FIELDS

Vocabulary = Literal["bid", "release", "lead"]

# The ping's own rule fields (``$hour``…) by their labels: "Filtered out on hour of the day ($hour)".
PSEUDO_LABELS = {p.name: p.label for p in PSEUDO_FIELDS}

BID_REASONS = {
    "won": "Won",
    "outbid": "Outbid",
    "paused": "Contract or account paused",
    "seller_blocked": "You block this seller",
    "buyer_blocked": "The seller's campaign blocks you",
    "not_named_in_consent": "The consumer's one-to-one consent does not name you",
    "below_min_score": "Quality score under your minimum",
    "schedule_closed": "Outside your schedule",
    "budget_reached": "Budget reached",
    "insufficient_balance": "Insufficient balance",
    "duplicate": "You bought this consumer recently",
    "suppressed": "The consumer opted out",
    "below_floor": "Price under the floor",
    "rtb_timeout": "Your RTB endpoint timed out",
    "rtb_error": "Your RTB endpoint failed",
    "rtb_invalid": "Your RTB answer was invalid",
    "rtb_no_bid": "Your RTB endpoint passed",
    "pricing_error": "Your price could not be computed",
    "invalid_terms": "Your contract's saved terms are no longer valid: save them again",
    "rejected_before": "You turned this lead down before (re-auction)",
    "post_rejected": "Your delivery endpoint turned the lead down",
}

RELEASE_REASONS = {
    "post_rejected": "Your delivery endpoint turned the lead down",
    "stale reservation": "Not delivered in time: the reservation expired",
    "reservation_expired": "Not delivered in time: the reservation expired",
}

# What a delivery rejection's detail means, when it is one of the exchange's own words.
DELIVERY_DETAILS = {
    "timeout": "it did not answer in time",
    "redirect": "it answered with a redirect",
    "not accepted": "its answer did not match the accept rule",
}

LEAD_REASONS = {
    "no_buyers": "No buyer bid on it",
    "duplicate": "A buyer bought this consumer recently (duplicate)",
    "suppressed": "The consumer opted out",
    "below_min_score": "Quality score under the offer's minimum",
    "campaign_paused": "Your campaign was paused",
    "offer_paused": "The offer was paused",
    "post_rejected": "The buyer's system turned it down",
    "reservation_expired": "Not delivered in time",
}


def _release_words(code: str) -> str:
    head, _, detail = code.partition(":")
    detail = detail.strip()
    words = RELEASE_REASONS.get(head.strip(), code)
    if detail and head.strip() in RELEASE_REASONS:
        words += f": {DELIVERY_DETAILS.get(detail, detail)}"
    return words


def reason_words(code: str | None, vocabulary: Vocabulary = "bid") -> str:
    """``code`` in words for the portal (``filtered:state`` → "Filtered out on state"); ``—`` for none."""
    if not code:
        return "—"
    if vocabulary == "release":
        return _release_words(code)
    if vocabulary == "lead":
        return LEAD_REASONS.get(code, code)
    if code.startswith("filtered:"):
        field = code.split(":", 1)[1]
        pseudo = PSEUDO_LABELS.get(field)
        return f"Filtered out on {field if pseudo is None else f'{pseudo.lower()} ({field})'}"
    if code.startswith("cap_reached:"):
        return f"Cap reached ({code.split(':', 1)[1]})"
    return BID_REASONS.get(code, code)
