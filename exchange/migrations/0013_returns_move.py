import core.ids
import django.core.validators
import django.db.models.deletion
import django.utils.timezone
from decimal import Decimal
from django.conf import settings
from django.db import migrations, models


def _content_types_move(apps, schema_editor):
    """Keep the admin's history and permissions of returns: their content types follow the models."""
    content_types = apps.get_model("contenttypes", "ContentType")
    content_types.objects.filter(app_label="billing", model__in=["return", "returnpolicy"]).update(app_label="exchange")


def _content_types_back(apps, schema_editor):
    content_types = apps.get_model("contenttypes", "ContentType")
    content_types.objects.filter(app_label="exchange", model__in=["return", "returnpolicy"]).update(app_label="billing")


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0002_organization_signing_secret'),
        ('contenttypes', '0002_remove_content_type_name'),
        ('billing', '0006_returns_move'),
        ('exchange', '0012_ping_answer_from_rows'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    # The returns' tables (made by billing's migrations) now belong to the exchange: state only.
    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
        migrations.CreateModel(
            name='ReturnPolicy',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('auto_approve_rate_percent', models.DecimalField(blank=True, decimal_places=2, help_text="Approve a return at once while the buyer's return rate over the last 30 days, this return included, stays at or under this percent. Empty: never approve automatically.", max_digits=5, null=True, validators=[django.core.validators.MinValueValidator(Decimal('0')), django.core.validators.MaxValueValidator(Decimal('100'))])),
                ('updated_at', models.DateTimeField(auto_now=True)),
                ('organization', models.OneToOneField(limit_choices_to={'is_buyer': True}, on_delete=django.db.models.deletion.CASCADE, related_name='return_policy', to='accounts.organization', verbose_name='buyer')),
            ],
            options={
                'verbose_name_plural': 'return policies',
                'db_table': 'billing_returnpolicy',
                'ordering': ['organization__name'],
            },
        ),
        migrations.CreateModel(
            name='Return',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('public_id', core.ids.PublicIdField(blank=True, editable=False, max_length=64, prefix='ret_', verbose_name='id')),
                ('reason', models.CharField(choices=[('bad_phone', 'Bad phone number'), ('bad_email', 'Bad email address'), ('wrong_person', 'Wrong person'), ('duplicate', 'Duplicate'), ('not_interested_at_capture', 'Not interested at capture'), ('fraud', 'Fraud'), ('out_of_area', 'Out of area'), ('other', 'Other (see the note)')], max_length=32)),
                ('note', models.TextField(blank=True, help_text="The buyer's explanation.", max_length=2000)),
                ('status', models.CharField(choices=[('requested', 'Requested'), ('approved', 'Approved'), ('denied', 'Denied')], default='requested', max_length=10)),
                ('decided_at', models.DateTimeField(blank=True, null=True)),
                ('decision_note', models.CharField(blank=True, max_length=500)),
                ('auto', models.BooleanField(default=False, help_text="Approved by the buyer's return policy, not by an operator.")),
                ('created_at', models.DateTimeField(db_index=True, default=django.utils.timezone.now)),
                ('decided_by', models.ForeignKey(blank=True, help_text='The operator; empty for automatic decisions (auto-approval, expiry).', null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('ledger_transaction', models.ForeignKey(blank=True, help_text='The refund and claw-back, once approved.', null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='billing.ledgertransaction')),
                ('organization', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='returns', to='accounts.organization', verbose_name='buyer')),
                ('requested_by', models.ForeignKey(blank=True, help_text='Empty when asked through the API.', null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('sale', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='returns', to='exchange.sale')),
                ('seller', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='returned_leads', to='accounts.organization')),
            ],
            options={
                'db_table': 'billing_return',
                'ordering': ['-created_at', '-id'],
                'indexes': [models.Index(fields=['status', 'created_at'], name='return_status_created')],
                'constraints': [models.UniqueConstraint(condition=models.Q(('status__in', ['requested', 'approved'])), fields=('sale',), name='return_open_or_approved_once_per_sale')],
            },
        ),
    ],
        ),
        migrations.RunPython(_content_types_move, _content_types_back),
    ]
