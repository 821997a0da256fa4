
import core.json_document
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('contracts', '0006_campaign_payout_fixed'),
    ]

    operations = [
        migrations.AlterField(
            model_name='buyercontract',
            name='delivery',
            field=models.JSONField(blank=True, decoder=core.json_document.StoredJSONDecoder, default=dict),
        ),
        migrations.AlterField(
            model_name='buyercontract',
            name='filters',
            field=models.JSONField(blank=True, decoder=core.json_document.StoredJSONDecoder, default=dict),
        ),
        migrations.AlterField(
            model_name='buyercontract',
            name='modifiers',
            field=models.JSONField(blank=True, decoder=core.json_document.StoredJSONDecoder, default=list),
        ),
        migrations.AlterField(
            model_name='buyercontract',
            name='schedule',
            field=models.JSONField(blank=True, decoder=core.json_document.StoredJSONDecoder, default=dict),
        ),
    ]
