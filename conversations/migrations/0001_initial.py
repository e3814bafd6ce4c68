"""The conversations app's schema in one migration (squashed: no deployment had migrated the
earlier ones), with two PostgreSQL-only additions the models cannot declare: the NOTIFY trigger of
accepted deliveries and the full-text index of message text."""

import conversations.models
import django.db.models.deletion
import uuid
from django.conf import settings
from django.db import migrations, models


# On PostgreSQL a delivery a webhook accepts wakes the workers' recorder (services/recorder.py).
# A trigger rather than a NOTIFY from the webhook: no extra round trip, and PostgreSQL delivers
# the notification only if the INSERT commits. Other databases get no trigger (the webhook then
# enqueues a record task).
NOTIFY_CREATE = """
CREATE OR REPLACE FUNCTION whatsbot_notify_accepted() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('whatsbot_accepted', '');
    RETURN NULL;
END
$$ LANGUAGE plpgsql;
CREATE TRIGGER processedmessage_accepted
    AFTER INSERT ON conversations_processedmessage
    FOR EACH ROW WHEN (NEW.pending IS NOT NULL)
    EXECUTE FUNCTION whatsbot_notify_accepted();
"""
NOTIFY_DROP = """
DROP TRIGGER IF EXISTS processedmessage_accepted ON conversations_processedmessage;
DROP FUNCTION IF EXISTS whatsbot_notify_accepted();
"""
# A full-text index over message text (selectors/search.py matches this exact expression); SQLite
# searches without one. The 'simple' configuration: customers write in any language, so words are
# not stemmed.
SEARCH_CREATE = "CREATE INDEX message_text_search_idx ON conversations_message USING gin (to_tsvector('simple', text))"
SEARCH_DROP = "DROP INDEX IF EXISTS message_text_search_idx"


def _on_postgresql(sql: str):
    def run(apps, schema_editor) -> None:
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql)

    return run


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('agents', '0001_initial'),
        ('profiles', '0001_initial'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='CannedResponse',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('shortcut', models.SlugField(help_text='Typed after a slash: /shipping', unique=True)),
                ('text', models.TextField(max_length=4096)),
                ('updated_at', models.DateTimeField(auto_now=True)),
            ],
            options={
                'ordering': ['shortcut'],
            },
        ),
        migrations.CreateModel(
            name='CapturedWebhook',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('provider', models.CharField(choices=[('meta', 'Meta Cloud API'), ('twilio', 'Twilio'), ('webchat', 'Web chat')], max_length=16)),
                ('path', models.CharField(help_text='Path and query string as requested.', max_length=500)),
                ('headers', models.JSONField(default=dict)),
                ('body', models.BinaryField()),
                ('received_at', models.DateTimeField(auto_now_add=True, db_index=True)),
            ],
            options={
                'ordering': ['-received_at'],
            },
        ),
        migrations.CreateModel(
            name='Label',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('name', models.CharField(max_length=50, unique=True)),
                ('color', models.CharField(default='#667781', help_text='A CSS colour, #rrggbb.', max_length=7)),
            ],
            options={
                'ordering': ['name'],
            },
        ),
        migrations.CreateModel(
            name='MonthlySpend',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('month', models.DateField(unique=True)),
                ('amount', models.DecimalField(decimal_places=6, default=0, max_digits=14)),
            ],
        ),
        migrations.CreateModel(
            name='WorkerHeartbeat',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('name', models.CharField(max_length=200, unique=True)),
                ('started_at', models.DateTimeField()),
                ('beat_at', models.DateTimeField()),
            ],
        ),
        migrations.CreateModel(
            name='Conversation',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('channel', models.CharField(choices=[('meta_whatsapp', 'WhatsApp (Meta)'), ('twilio_whatsapp', 'WhatsApp (Twilio)'), ('twilio_sms', 'SMS (Twilio)'), ('webchat', 'Web chat')], max_length=32)),
                ('business_address', models.CharField(max_length=64)),
                ('status', models.CharField(choices=[('open', 'Open'), ('closed', 'Closed')], default='open', max_length=16)),
                ('mode', models.CharField(choices=[('bot', 'Bot answers'), ('human', 'Staff answers')], default='bot', max_length=16)),
                ('last_customer_message_at', models.DateTimeField(blank=True, null=True)),
                ('needs_human', models.BooleanField(default=False)),
                ('taken_over_at', models.DateTimeField(blank=True, null=True)),
                ('last_read_message_id', models.PositiveBigIntegerField(default=0)),
                ('resolved_at', models.DateTimeField(blank=True, null=True)),
                ('snoozed_until', models.DateTimeField(blank=True, null=True)),
                ('openai_conversation_id', models.CharField(blank=True, max_length=100)),
                ('summary', models.TextField(blank=True)),
                ('summary_through_message_id', models.BigIntegerField(blank=True, null=True)),
                ('details_asked_at_turn', models.PositiveIntegerField(blank=True, null=True)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('updated_at', models.DateTimeField(auto_now=True)),
                ('assigned_to', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('current_agent', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='agents.agent')),
                ('profile', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='conversations', to='profiles.clientprofile')),
                ('labels', models.ManyToManyField(blank=True, related_name='conversations', to='conversations.label')),
            ],
            options={
                'permissions': [('take_over', 'Can take over a conversation and hand it back'), ('write', 'Can write to customers (messages and templates)'), ('assign', 'Can assign conversations to staff'), ('triage', 'Can resolve, reopen, snooze and label conversations'), ('add_private_note', 'Can write private notes for colleagues'), ('use_simulator', 'Can write as a simulated customer in the simulator')],
                'indexes': [models.Index(fields=['-updated_at', '-id'], name='conversation_page_idx'), models.Index(fields=['business_address'], name='conversation_business_idx'), models.Index(fields=['assigned_to', '-updated_at', '-id'], name='conversation_holder_page_idx')],
                'constraints': [models.UniqueConstraint(condition=models.Q(('status', 'open')), fields=('profile', 'channel', 'business_address'), name='one_open_conversation_per_customer_and_number')],
            },
        ),
        migrations.CreateModel(
            name='AuditEntry',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('action', models.CharField(max_length=64)),
                ('detail', models.JSONField(blank=True, default=dict)),
                ('created_at', models.DateTimeField(auto_now_add=True, db_index=True)),
                ('actor', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('contact', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='audit_entries', to='profiles.contact')),
                ('profile', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='audit_entries', to='profiles.clientprofile')),
                ('conversation', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='audit_entries', to='conversations.conversation')),
            ],
            options={
                'verbose_name_plural': 'audit entries',
                'ordering': ['-created_at'],
            },
        ),
        migrations.CreateModel(
            name='Message',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('uid', models.UUIDField(default=uuid.uuid4, editable=False, unique=True)),
                ('direction', models.CharField(choices=[('in', 'Inbound'), ('out', 'Outbound')], max_length=3)),
                ('author', models.CharField(choices=[('customer', 'Customer'), ('bot', 'Bot'), ('staff', 'Staff'), ('note', 'Internal note'), ('private_note', 'Private note')], max_length=16)),
                ('kind', models.CharField(choices=[('text', 'Text'), ('image', 'Image'), ('audio', 'Audio'), ('video', 'Video'), ('document', 'Document'), ('sticker', 'Sticker'), ('location', 'Location'), ('contacts', 'Contacts'), ('interactive', 'Button or list reply'), ('reaction', 'Reaction'), ('order', 'Order'), ('system', 'System notice'), ('unsupported', 'Unsupported')], default='text', max_length=16)),
                ('text', models.TextField(blank=True)),
                ('staff_label', models.CharField(blank=True, max_length=200)),
                ('provider', models.CharField(choices=[('meta', 'Meta Cloud API'), ('twilio', 'Twilio'), ('webchat', 'Web chat')], max_length=16)),
                ('provider_message_id', models.CharField(blank=True, max_length=128, null=True)),
                ('status', models.CharField(choices=[('received', 'Received'), ('processing', 'Processing'), ('handled', 'Handled'), ('pending', 'Pending'), ('sending', 'Sending'), ('unknown', 'Unknown'), ('sent', 'Sent'), ('delivered', 'Delivered'), ('read', 'Read'), ('played', 'Played'), ('failed', 'Failed')], max_length=16)),
                ('error_code', models.CharField(blank=True, max_length=32)),
                ('error_title', models.CharField(blank=True, max_length=255)),
                ('template', models.JSONField(blank=True, default=dict)),
                ('send_attempts', models.PositiveSmallIntegerField(default=0)),
                ('claimed_by', models.CharField(blank=True, editable=False, max_length=200)),
                ('retry_at', models.DateTimeField(blank=True, editable=False, null=True)),
                ('resend_count', models.PositiveSmallIntegerField(default=0, editable=False)),
                ('model', models.CharField(blank=True, max_length=100)),
                ('openai_response_id', models.CharField(blank=True, max_length=100)),
                ('input_tokens', models.PositiveIntegerField(blank=True, null=True)),
                ('output_tokens', models.PositiveIntegerField(blank=True, null=True)),
                ('provider_timestamp', models.DateTimeField(blank=True, null=True)),
                ('reaction', models.CharField(blank=True, help_text="The customer's latest reaction emoji to it.", max_length=32)),
                ('knowledge_sources', models.JSONField(blank=True, default=list)),
                ('agent_name', models.CharField(blank=True, max_length=32)),
                ('cost', models.DecimalField(blank=True, decimal_places=6, max_digits=12, null=True)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('updated_at', models.DateTimeField(auto_now=True)),
                ('conversation', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='messages', to='conversations.conversation')),
                ('in_reply_to', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='replies', to='conversations.message')),
                ('staff_user', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'ordering': ['created_at', 'id'],
                'indexes': [models.Index(fields=['conversation', 'created_at'], name='message_conversation_time_idx'), models.Index(fields=['status', 'updated_at'], name='message_status_age_idx')],
                'constraints': [models.UniqueConstraint(condition=models.Q(('provider_message_id__isnull', False)), fields=('provider', 'provider_message_id'), name='unique_provider_message_id'), models.UniqueConstraint(condition=models.Q(('author', 'bot')), fields=('in_reply_to',), name='one_bot_reply_per_message')],
            },
        ),
        migrations.CreateModel(
            name='Attachment',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('file', models.FileField(blank=True, upload_to=conversations.models.attachment_path)),
                ('content_type', models.CharField(blank=True, max_length=100)),
                ('size_bytes', models.PositiveBigIntegerField(blank=True, null=True)),
                ('sha256', models.CharField(blank=True, max_length=64)),
                ('caption', models.TextField(blank=True, help_text="The customer's own caption, as sent.")),
                ('transcript', models.TextField(blank=True, help_text='Speech-to-text of a voice note or audio file.')),
                ('provider_ref', models.CharField(blank=True, max_length=1024)),
                ('original_filename', models.CharField(blank=True, max_length=255)),
                ('is_voice', models.BooleanField(default=False)),
                ('status', models.CharField(choices=[('pending', 'Not downloaded yet'), ('stored', 'Stored'), ('failed', 'Download failed')], default='pending', max_length=16)),
                ('error', models.CharField(blank=True, max_length=255)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('message', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='attachments', to='conversations.message')),
            ],
        ),
        migrations.CreateModel(
            name='MessagePart',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('index', models.PositiveSmallIntegerField()),
                ('text', models.TextField()),
                ('provider_message_id', models.CharField(blank=True, max_length=128)),
                ('attempted_at', models.DateTimeField(blank=True, null=True)),
                ('sent_at', models.DateTimeField(blank=True, null=True)),
                ('message', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='parts', to='conversations.message')),
            ],
            options={
                'ordering': ['message', 'index'],
                'constraints': [models.UniqueConstraint(fields=('message', 'index'), name='unique_message_part_index')],
            },
        ),
        migrations.CreateModel(
            name='ModelUsage',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('purpose', models.CharField(choices=[('extraction', 'Profile extraction'), ('summary', 'Context summary'), ('discarded_reply', 'Reply discarded (a newer message arrived)')], max_length=32)),
                ('model', models.CharField(blank=True, max_length=100)),
                ('input_tokens', models.PositiveIntegerField(default=0)),
                ('output_tokens', models.PositiveIntegerField(default=0)),
                ('cost', models.DecimalField(blank=True, decimal_places=6, max_digits=12, null=True)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('conversation', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='model_usage', to='conversations.conversation')),
                ('message', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='conversations.message')),
            ],
        ),
        migrations.CreateModel(
            name='ProcessedMessage',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('provider', models.CharField(choices=[('meta', 'Meta Cloud API'), ('twilio', 'Twilio'), ('webchat', 'Web chat')], max_length=16)),
                ('provider_message_id', models.CharField(max_length=128)),
                ('received_at', models.DateTimeField(auto_now_add=True, db_index=True)),
                ('pending', models.JSONField(blank=True, editable=False, null=True)),
                ('record_attempts', models.PositiveSmallIntegerField(default=0, editable=False)),
                ('record_error', models.CharField(blank=True, editable=False, max_length=100)),
                ('quarantined_at', models.DateTimeField(blank=True, editable=False, null=True)),
            ],
            options={
                'indexes': [models.Index(condition=models.Q(('pending__isnull', False)), fields=['received_at'], name='processed_pending_idx')],
                'constraints': [models.UniqueConstraint(fields=('provider', 'provider_message_id'), name='unique_processed_message')],
            },
        ),
        migrations.CreateModel(
            name='ReadMarker',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('last_read_message_id', models.PositiveBigIntegerField(default=0)),
                ('conversation', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='read_markers', to='conversations.conversation')),
                ('user', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'constraints': [models.UniqueConstraint(fields=('conversation', 'user'), name='one_read_marker_per_agent')],
            },
        ),
        migrations.CreateModel(
            name='ToolCall',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('agent_name', models.CharField(blank=True, max_length=32)),
                ('tool_name', models.CharField(max_length=64)),
                ('arguments', models.JSONField(blank=True, default=dict)),
                ('status', models.CharField(choices=[('ok', 'Answered'), ('error', 'Failed'), ('timeout', 'Timed out'), ('invalid', 'Invalid arguments'), ('refused', 'Refused (blocked address)'), ('needs_confirmation', "Waiting for the customer's confirmation"), ('confirmed', 'Confirmed (then called)'), ('handover', 'Hand-over')], max_length=24)),
                ('http_status', models.PositiveSmallIntegerField(blank=True, null=True)),
                ('latency_ms', models.PositiveIntegerField(default=0)),
                ('result', models.TextField(blank=True, help_text='What the model read back (truncated).')),
                ('is_truncated', models.BooleanField(default=False)),
                ('created_at', models.DateTimeField(auto_now_add=True, db_index=True)),
                ('conversation', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='tool_calls', to='conversations.conversation')),
                ('message', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='tool_calls', to='conversations.message')),
            ],
            options={
                'ordering': ['created_at', 'id'],
            },
        ),
        migrations.CreateModel(
            name='UsageWindow',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('kind', models.CharField(choices=[('replies', 'Model replies (one row each)'), ('tokens', 'Model tokens per day'), ('notice_replies', 'Notice: replies per minute'), ('notice_tokens', 'Notice: tokens per day'), ('notice_spend', 'Notice: monthly spend')], max_length=16)),
                ('starts_at', models.DateTimeField()),
                ('count', models.PositiveBigIntegerField(default=0)),
                ('contact', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='profiles.contact')),
            ],
            options={
                'indexes': [models.Index(fields=['contact', 'kind', 'starts_at'], name='usage_window_lookup')],
                'constraints': [models.UniqueConstraint(condition=models.Q(('kind', 'replies'), _negated=True), fields=('contact', 'kind', 'starts_at'), name='one_usage_window_per_contact_period')],
            },
        ),
        migrations.RunPython(_on_postgresql(NOTIFY_CREATE), _on_postgresql(NOTIFY_DROP), elidable=False),
        migrations.RunPython(_on_postgresql(SEARCH_CREATE), _on_postgresql(SEARCH_DROP), elidable=False),
    ]
