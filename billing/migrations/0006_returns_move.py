from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('billing', '0005_reconciliationrun'),
    ]

    # Returns moved to the exchange with the sales they return (docs/decisions.md 43): the tables stay,
    # named billing_return and billing_returnpolicy; only Django's model state moves.
    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
        migrations.RemoveField(
            model_name='returnpolicy',
            name='organization',
        ),
        migrations.DeleteModel(
            name='Return',
        ),
        migrations.DeleteModel(
            name='ReturnPolicy',
        ),
    ],
        ),
    ]
