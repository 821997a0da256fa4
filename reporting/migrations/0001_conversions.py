
import core.ids
import core.money
import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('accounts', '0003_invitation_and_key_rotation'),
        ('contracts', '0003_contract_hold'),
        ('exchange', '0013_returns_move'),
    ]

    operations = [
        migrations.CreateModel(
            name='Conversion',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('public_id', core.ids.PublicIdField(blank=True, editable=False, max_length=64, prefix='cnv_', verbose_name='id')),
                ('event', models.CharField(max_length=32)),
                ('value', core.money.MoneyField(decimal_places=2, max_digits=14)),
                ('test', models.BooleanField(default=False)),
                ('occurred_at', models.DateTimeField()),
                ('created_at', models.DateTimeField(db_index=True, default=django.utils.timezone.now)),
                ('campaign', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='conversions', to='contracts.campaign')),
                ('contract', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='conversions', to='contracts.buyercontract')),
                ('organization', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='conversions', to='accounts.organization', verbose_name='buyer')),
                ('sale', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='conversions', to='exchange.sale')),
                ('seller', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to='accounts.organization')),
            ],
            options={
                'ordering': ['-created_at', '-id'],
                'constraints': [models.UniqueConstraint(fields=('sale', 'event'), name='conversion_once_per_sale_event')],
            },
        ),
    ]
