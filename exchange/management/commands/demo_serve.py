"""``manage.py demo_serve``: print the demo logins and serve the exchange on 127.0.0.1."""

from __future__ import annotations

from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser

from accounts.tenancy import market_scope
from contracts.models import Campaign

DEMO_PASSWORD = "gavel-demo-pass"  # noqa: S105 - the demo market's published password
LOGINS = [
    ("operator (admin)", "operator@gavel.test"),
    ("buyer", "owner@acme.test"),
    ("buyer", "owner@bluebird.test"),
    ("seller", "owner@leadgen.test"),
    ("seller", "owner@quoteforge.test"),
]


class Command(BaseCommand):
    help = "Serve the demo exchange on 127.0.0.1 and print how to log in."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=8000)

    def handle(self, *args: Any, **options: Any) -> None:
        port = options["port"]
        base = f"http://127.0.0.1:{port}"
        with market_scope():
            campaigns = list(Campaign.objects.order_by("public_id").values_list("public_id", flat=True))
        lines = [
            "",
            f"Gavel demo exchange on {base}",
            f"  portal:   {base}/login/",
            f"  admin:    {base}/admin/",
            f"  API docs: {base}/api/docs",
            f"Logins (password '{DEMO_PASSWORD}'):",
            *[f"  {role:<17} {email}" for role, email in LOGINS],
            "Seller API key (scope leads): gvl_demo_leadgen_0000000000000",
            f"Campaigns: {', '.join(campaigns)}",
            "",
        ]
        self.stdout.write("\n".join(lines))
        call_command("runserver", f"127.0.0.1:{port}", use_reloader=False)
