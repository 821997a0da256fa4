"""Monthly statements: for each of an organization's ledger accounts, the opening balance at the
start of the month (midnight in the organization's time zone), every entry of the month with the
running balance, and the closing balance — as data, CSV and PDF.

Guarantee: for each account, opening + the sum of the month's entries = closing, and the closing
balance of one month is the opening balance of the next (both are sums of the same entries).
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from django.utils import timezone
from fpdf import FPDF
from fpdf.fonts import FontFace

from accounts.models import Organization
from billing.models import LedgerAccount, LedgerEntry, LedgerTransaction
from billing.selectors import accounts_of, balance_at
from core.money import currency_code, money_str, to_money

MONTH_FORMAT = re.compile(r"^(\d{4})-(\d{2})$")
ACCOUNT_LABELS: dict[str, str] = {
    LedgerAccount.Kind.BUYER_BALANCE: "Prepaid balance",
    LedgerAccount.Kind.SELLER_PAYABLE: "Owed to you (seller payable)",
}
ACCOUNT_NOTES: dict[str, str] = {
    LedgerAccount.Kind.BUYER_BALANCE: "Your prepaid funds: top-ups and returns add, purchases subtract.",
    LedgerAccount.Kind.SELLER_PAYABLE: "What the exchange owes you: sales add, payouts and returns subtract.",
}


class StatementMonthError(ValueError):
    """A month that has no statement (malformed, or in the future)."""


def month_add(month: date, months: int) -> date:
    """The first day of the month ``months`` after (or before) ``month``."""
    index = month.year * 12 + month.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def month_bounds(*, month: date, organization: Organization) -> tuple[datetime, datetime]:
    """Midnight on the 1st of ``month`` and of the next month, in the organization's time zone."""
    tz = organization.tz
    start = datetime(month.year, month.month, 1, tzinfo=tz)
    nxt = month_add(month, 1)
    return start, datetime(nxt.year, nxt.month, 1, tzinfo=tz)


def month_current(*, organization: Organization, now: datetime | None = None) -> date:
    local = (now or timezone.now()).astimezone(organization.tz)
    return date(local.year, local.month, 1)


def month_default(*, organization: Organization, now: datetime | None = None) -> date:
    """The current month, in the organization's time zone: the statement to date (last month's,
    complete, is one step back). Opening on last month showed a new organization an empty page."""
    return month_current(organization=organization, now=now)


def month_parse(value: str | None, *, organization: Organization, now: datetime | None = None) -> date:
    """``YYYY-MM`` → the first day of that month; empty → the current month. A malformed month or one
    after the current month raises StatementMonthError."""
    if not value:
        return month_default(organization=organization, now=now)
    match = MONTH_FORMAT.match(value.strip())
    if match is None or not 1 <= int(match[2]) <= 12 or int(match[1]) < 2000:
        raise StatementMonthError(f"{value!r} is not a month (use YYYY-MM)")
    month = date(int(match[1]), int(match[2]), 1)
    if month > month_current(organization=organization, now=now):
        raise StatementMonthError(f"{value} has not started yet")
    return month


def months_available(*, organization: Organization, now: datetime | None = None) -> list[date]:
    """The months offered, newest first: the current one (the default) back to last month or the
    organization's first month on the exchange or of its first entry, whichever is earliest."""
    current = month_current(organization=organization, now=now)
    first_at = organization.created_at
    first_entry = LedgerEntry.objects.filter(organization=organization).order_by("created_at").first()
    if first_entry is not None and first_entry.created_at < first_at:
        first_at = first_entry.created_at
    local = first_at.astimezone(organization.tz)
    month = min(date(local.year, local.month, 1), month_add(current, -1))
    months = []
    while month <= current:
        months.append(month)
        month = month_add(month, 1)
    return months[::-1]


@dataclass(frozen=True)
class StatementLine:
    """One entry of the month, with the account's balance once it was booked."""

    at: datetime  # in the organization's time zone
    kind: str
    kind_label: str
    memo: str
    reference: str
    amount: Decimal
    balance: Decimal


@dataclass(frozen=True)
class AccountStatement:
    kind: str
    label: str
    note: str
    opening: Decimal
    lines: list[StatementLine]
    closing: Decimal

    @property
    def money_in(self) -> Decimal:
        return sum((line.amount for line in self.lines if line.amount > 0), Decimal("0.00"))

    @property
    def money_out(self) -> Decimal:
        return sum((line.amount for line in self.lines if line.amount < 0), Decimal("0.00"))


@dataclass(frozen=True)
class Statement:
    organization: Organization
    month: date
    start: datetime
    end: datetime
    accounts: list[AccountStatement]
    generated_at: datetime
    complete: bool  # the month is over: the statement will not change

    @property
    def title(self) -> str:
        return f"Statement for {self.month:%B %Y}"

    @property
    def filename_stem(self) -> str:
        return f"gavel-statement-{self.organization.slug}-{self.month:%Y-%m}"


def statement_build(*, organization: Organization, month: date, now: datetime | None = None) -> Statement:
    """The organization's statement for ``month`` (run in its tenant scope): its own accounts only.

    Two queries per account: the sum of the entries before the month, and the month's entries.
    """
    now = now or timezone.now()
    start, end = month_bounds(month=month, organization=organization)
    kind_labels: dict[str, str] = dict(LedgerTransaction.Kind.choices)
    accounts = []
    for account in accounts_of(organization=organization):
        opening = balance_at(organization=organization, account=account, at=start)
        entries = (
            LedgerEntry.objects.filter(
                organization=organization, account=account, created_at__gte=start, created_at__lt=end
            )
            .select_related("transaction")
            .order_by("created_at", "id")
        )
        running, lines = opening, []
        for entry in entries:
            amount = to_money(entry.amount)
            running += amount
            lines.append(
                StatementLine(
                    at=entry.created_at.astimezone(organization.tz),
                    kind=entry.transaction.kind,
                    kind_label=kind_labels.get(entry.transaction.kind, entry.transaction.kind),
                    memo=entry.transaction.memo,
                    reference=entry.transaction.reference,
                    amount=amount,
                    balance=running,
                )
            )
        accounts.append(
            AccountStatement(
                kind=account.kind,
                label=ACCOUNT_LABELS.get(account.kind, account.get_kind_display()),
                note=ACCOUNT_NOTES.get(account.kind, ""),
                opening=opening,
                lines=lines,
                closing=running,
            )
        )
    return Statement(
        organization=organization,
        month=month,
        start=start,
        end=end,
        accounts=accounts,
        generated_at=now.astimezone(organization.tz),
        complete=now >= end,
    )


# --- CSV ----------------------------------------------------------------------------------------


def csv_header() -> list[str]:
    """The statement CSV's header: the amounts' columns name the exchange's currency."""
    code = currency_code()
    return ["account", "date", "type", "description", "reference", f"amount ({code})", f"balance ({code})"]


def _cell(text: str) -> str:
    """Text a spreadsheet will not run as a formula (CSV injection)."""
    return f"'{text}" if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def statement_csv(statement: Statement) -> str:
    """One header row, then per account: an opening row, the month's entries, a closing row.
    Dates are ISO 8601 with the organization's UTC offset; amounts are plain decimals."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(csv_header())
    last_day = month_add(statement.month, 1).toordinal() - 1
    for account in statement.accounts:
        label = account.label
        writer.writerow(
            [label, statement.start.isoformat(), "opening", "Opening balance", "", "", money_str(account.opening)]
        )
        for line in account.lines:
            writer.writerow(
                [
                    label,
                    line.at.isoformat(timespec="seconds"),
                    line.kind,
                    _cell(line.memo),
                    _cell(line.reference),
                    money_str(line.amount),
                    money_str(line.balance),
                ]
            )
        writer.writerow(
            [
                label,
                date.fromordinal(last_day).isoformat(),
                "closing",
                "Closing balance",
                "",
                "",
                money_str(account.closing),
            ]
        )
    return out.getvalue()


# --- PDF ----------------------------------------------------------------------------------------

# The PDF's built-in fonts speak Latin-1 only; these are the other characters our memos use.
_LATIN1 = str.maketrans({"–": "-", "—": "-", "·": "-", "→": "->", "…": "...", "‘": "'", "’": "'", "“": '"', "”": '"'})


def _pdf_text(text: str) -> str:
    return text.translate(_LATIN1).encode("latin-1", "replace").decode("latin-1")


class _StatementPdf(FPDF):
    footer_text = ""

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font("Helvetica", size=8)
        self.set_text_color(93, 107, 130)
        self.cell(0, 6, _pdf_text(self.footer_text), align="L")
        self.cell(0, 6, f"Page {self.page_no()}/{{nb}}", align="R")


def statement_pdf(statement: Statement) -> bytes:
    """The statement as a Letter-size PDF (built-in Helvetica: no font files to ship)."""
    organization = statement.organization
    pdf = _StatementPdf(orientation="portrait", unit="mm", format="Letter")
    pdf.footer_text = f"{organization.name} - {statement.title} - generated {statement.generated_at:%Y-%m-%d %H:%M %Z}"
    pdf.set_title(_pdf_text(f"{organization.name}: {statement.title}"))
    pdf.set_author("Gavel")
    pdf.set_auto_page_break(auto=True, margin=16)
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 16)
    pdf.cell(0, 9, _pdf_text(statement.title), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=10)
    pdf.set_text_color(93, 107, 130)
    period = f"{statement.start:%Y-%m-%d %H:%M} to {statement.end:%Y-%m-%d %H:%M} ({organization.timezone})" + (
        "" if statement.complete else " - month in progress"
    )
    pdf.cell(0, 6, _pdf_text(organization.name), new_x="LMARGIN", new_y="NEXT")
    pdf.cell(0, 6, _pdf_text(period), new_x="LMARGIN", new_y="NEXT")
    pdf.set_text_color(29, 36, 51)
    if not statement.accounts:
        pdf.ln(6)
        pdf.cell(0, 6, "No ledger accounts: nothing was ever booked for this organization.")
    bold = FontFace(emphasis="BOLD")
    for account in statement.accounts:
        pdf.ln(5)
        pdf.set_font("Helvetica", "B", 12)
        pdf.cell(0, 7, _pdf_text(account.label), new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", size=9)
        pdf.set_text_color(93, 107, 130)
        pdf.cell(0, 5, _pdf_text(account.note), new_x="LMARGIN", new_y="NEXT")
        pdf.set_text_color(29, 36, 51)
        pdf.set_font("Helvetica", size=8.5)
        pdf.ln(1)
        with pdf.table(
            col_widths=(30, 24, 70, 26, 23, 23),
            text_align=("LEFT", "LEFT", "LEFT", "LEFT", "RIGHT", "RIGHT"),
            headings_style=FontFace(emphasis="BOLD", fill_color=(238, 242, 251)),
            line_height=5,
            borders_layout="HORIZONTAL_LINES",
        ) as table:
            code = currency_code()
            table.row(["Date", "Type", "Description", "Reference", f"Amount ({code})", f"Balance ({code})"])
            table.row(
                [f"{statement.start:%Y-%m-%d}", "", "Opening balance", "", "", money_str(account.opening)], style=bold
            )
            for line in account.lines:
                table.row(
                    [
                        f"{line.at:%Y-%m-%d %H:%M}",
                        _pdf_text(line.kind_label),
                        _pdf_text(line.memo),
                        _pdf_text(line.reference),
                        money_str(line.amount),
                        money_str(line.balance),
                    ]
                )
            table.row(
                [
                    f"{date.fromordinal(month_add(statement.month, 1).toordinal() - 1):%Y-%m-%d}",
                    "",
                    f"Closing balance ({len(account.lines)} entries)",
                    "",
                    "",
                    money_str(account.closing),
                ],
                style=bold,
            )
    return bytes(pdf.output())
