"""The agents app's schema in one migration (squashed: no deployment had migrated the earlier ones)."""

import django.core.validators
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('knowledge', '0001_initial'),
    ]

    operations = [
        migrations.CreateModel(
            name='Tool',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('name', models.CharField(help_text='e.g. lookup_order', max_length=48, unique=True, validators=[django.core.validators.RegexValidator('^[a-z][a-z0-9_]{0,47}$', 'Lowercase letters, digits and _, starting with a letter.')])),
                ('description', models.TextField(help_text='For the model: what the tool does and when to use it.')),
                ('parameters', models.JSONField(default=dict, help_text='JSON Schema of the arguments, e.g. {"type": "object", "properties": {"order_id": {"type": "string", "pattern": "^[0-9]+$"}}, "required": ["order_id"]}. Checked on every call.')),
                ('method', models.CharField(choices=[('GET', 'Get'), ('POST', 'Post'), ('PUT', 'Put'), ('PATCH', 'Patch'), ('DELETE', 'Delete')], default='GET', max_length=8)),
                ('url_template', models.CharField(help_text='RFC 6570 template: https://shop.example/api/orders/{order_id}. Arguments not in the template go in the query string (GET, DELETE) or the JSON body.', max_length=500)),
                ('headers', models.JSONField(blank=True, default=dict, help_text='Plain headers, e.g. {"Accept": "application/json"}.')),
                ('secret_headers', models.JSONField(blank=True, default=dict, help_text='Header → name of the environment variable holding its value, e.g. {"Authorization": "TOOL_SECRET_ORDERS"}. Names must start with TOOL_SECRET_; values never enter the database.')),
                ('timeout_seconds', models.FloatField(default=5, validators=[django.core.validators.MinValueValidator(0.1), django.core.validators.MaxValueValidator(30)])),
                ('allowed_hosts', models.JSONField(blank=True, default=list, help_text='Hosts the tool may reach, redirects included, e.g. ["shop.example"].')),
                ('result_fields', models.JSONField(blank=True, default=list, help_text='Dotted paths of the JSON answer the model reads back, e.g. ["status", "shipment.eta"]; empty: the whole answer.')),
                ('max_result_chars', models.PositiveIntegerField(default=1000, validators=[django.core.validators.MaxValueValidator(20000)])),
                ('changes_something', models.BooleanField(default=False, help_text='It changes something (cancels an order…): called only after the customer confirmed the same call in the conversation.')),
                ('is_active', models.BooleanField(default=True, verbose_name='active')),
                ('updated_at', models.DateTimeField(auto_now=True)),
            ],
            options={
                'ordering': ['name'],
            },
        ),
        migrations.CreateModel(
            name='Agent',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('name', models.CharField(help_text='e.g. billing: the hand-over is transfer_to_billing', max_length=32, unique=True, validators=[django.core.validators.RegexValidator('^[a-z][a-z0-9_]{0,47}$', 'Lowercase letters, digits and _, starting with a letter.')])),
                ('description', models.CharField(blank=True, help_text='For other agents: when to hand over to it.', max_length=300)),
                ('instructions', models.TextField(help_text='Its system instructions.')),
                ('model', models.CharField(blank=True, help_text='Empty: OPENAI_MODEL.', max_length=100)),
                ('is_entry', models.BooleanField(default=False, help_text='Answers new conversations.', verbose_name='entry agent')),
                ('updated_at', models.DateTimeField(auto_now=True)),
                ('handoffs', models.ManyToManyField(blank=True, help_text='Agents it may hand the conversation to.', related_name='+', to='agents.agent')),
                ('knowledge_tags', models.ManyToManyField(blank=True, help_text='Search only articles with these tags (none: all).', related_name='+', to='knowledge.tag')),
                ('tools', models.ManyToManyField(blank=True, related_name='agents', to='agents.tool')),
            ],
            options={
                'ordering': ['name'],
                'constraints': [models.UniqueConstraint(condition=models.Q(('is_entry', True)), fields=('is_entry',), name='one_entry_agent')],
            },
        ),
    ]
