import accounts.models
from django.db import migrations, models


def give_each_its_own_secret(apps, schema_editor):
    # Django computes a callable default once for all existing rows; each needs its own secret.
    Organization = apps.get_model("accounts", "Organization")
    for organization in Organization.objects.all():
        organization.signing_secret = accounts.models.signing_secret_new()
        organization.save(update_fields=["signing_secret"])


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="organization",
            name="signing_secret",
            field=models.CharField(
                default=accounts.models.signing_secret_new,
                help_text="Signs every request Gavel sends this organization (RTB, delivery): Standard Webhooks.",
                max_length=80,
            ),
        ),
        migrations.RunPython(give_each_its_own_secret, migrations.RunPython.noop),
    ]
