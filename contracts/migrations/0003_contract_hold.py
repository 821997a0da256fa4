"""The exchange's hold apart from the buyer's status (issue 12): a pause the circuit breaker made
becomes a breaker hold, a pause with a reason (set by the operator or the breaker) an operator hold;
a pause without a reason was the buyer's and stays its status."""

from django.db import migrations, models


def holds_from_pauses(apps, schema_editor):
    BuyerContract = apps.get_model("contracts", "BuyerContract")
    paused = BuyerContract.objects.filter(status="paused")
    paused.filter(breaker_retry_at__isnull=False).update(status="active", hold="breaker")
    paused.exclude(hold_reason="").update(status="active", hold="operator")


def pauses_from_holds(apps, schema_editor):
    BuyerContract = apps.get_model("contracts", "BuyerContract")
    BuyerContract.objects.filter(hold__isnull=False).update(status="paused")


class Migration(migrations.Migration):
    dependencies = [
        ("contracts", "0002_contract_breaker"),
    ]

    operations = [
        migrations.RenameField(model_name="buyercontract", old_name="paused_reason", new_name="hold_reason"),
        migrations.AddField(
            model_name="buyercontract",
            name="hold",
            field=models.CharField(
                blank=True,
                choices=[("operator", "Operator"), ("breaker", "Circuit breaker")],
                help_text="Held by the exchange: a held contract does not bid, whatever its status.",
                max_length=16,
                null=True,
            ),
        ),
        migrations.AlterField(
            model_name="buyercontract",
            name="status",
            field=models.CharField(
                choices=[("active", "Active"), ("paused", "Paused")],
                default="active",
                help_text="The buyer's own switch: a paused contract does not bid.",
                max_length=16,
            ),
        ),
        migrations.AlterField(
            model_name="buyercontract",
            name="breaker_retry_at",
            field=models.DateTimeField(
                blank=True,
                editable=False,
                help_text="Held by the RTB circuit breaker: from this time one ping at a time asks the buyer again.",
                null=True,
            ),
        ),
        migrations.AlterField(
            model_name="buyercontract",
            name="breaker_trips",
            field=models.PositiveSmallIntegerField(
                default=0, editable=False, help_text="Times in a row the circuit breaker held this contract."
            ),
        ),
        migrations.RunPython(holds_from_pauses, pauses_from_holds),
    ]
