"""The gdpr app's schema in one migration (squashed: no deployment had migrated the earlier ones)."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='ErasureRecord',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('performed_by_label', models.CharField(blank=True, max_length=150)),
                ('performed_at', models.DateTimeField(auto_now_add=True, db_index=True)),
                ('identifier_kind', models.CharField(choices=[('phone', 'Phone number'), ('email', 'Email address'), ('external_id', 'WhatsApp id / BSUID / provider address'), ('visitor_id', 'Web chat visitor id'), ('contact_id', 'Contact id'), ('profile_id', 'Profile id')], max_length=16)),
                ('identifier_hash', models.CharField(db_index=True, max_length=64)),
                ('counts', models.JSONField(default=dict, help_text='Rows and files deleted, per kind.')),
                ('performed_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'ordering': ['-performed_at'],
                'permissions': [('export_subject', "Can export a person's data"), ('erase_subject', "Can erase a person's data")],
            },
        ),
        migrations.CreateModel(
            name='ErasedIdentifier',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('identifier_hash', models.CharField(db_index=True, max_length=64)),
                ('erasure', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='erased_identifiers', to='gdpr.erasurerecord')),
            ],
            options={
                'constraints': [models.UniqueConstraint(fields=('erasure', 'identifier_hash'), name='one_erased_identifier_per_erasure')],
            },
        ),
        migrations.CreateModel(
            name='RemoteDeletion',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('origin', models.CharField(choices=[('erasure', 'Erasure'), ('retention', 'Retention (purge_expired)'), ('orphan', 'Orphaned (a reply in flight, discarded, or an earlier call of a turn)')], default='erasure', max_length=16)),
                ('processor', models.CharField(choices=[('openai', 'OpenAI'), ('twilio', 'Twilio'), ('meta', 'Meta')], max_length=16)),
                ('kind', models.CharField(choices=[('openai_conversation_item', 'OpenAI conversation item'), ('openai_conversation', 'OpenAI conversation'), ('openai_response', 'OpenAI stored response'), ('twilio_message', 'Twilio message (and its media)'), ('meta_media', 'Media uploaded to Meta')], max_length=32)),
                ('remote_id', models.CharField(max_length=200)),
                ('parent_id', models.CharField(blank=True, max_length=200)),
                ('position', models.PositiveIntegerField(default=0)),
                ('status', models.CharField(choices=[('pending', 'Pending'), ('deleted', 'Deleted'), ('already_gone', 'Already gone (404)'), ('failed', 'Failed')], default='pending', max_length=16)),
                ('attempts', models.PositiveSmallIntegerField(default=0)),
                ('last_error', models.CharField(blank=True, max_length=255)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('completed_at', models.DateTimeField(blank=True, null=True)),
                ('erasure', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='remote_deletions', to='gdpr.erasurerecord')),
            ],
            options={
                'ordering': ['erasure', 'position', 'id'],
                'constraints': [models.UniqueConstraint(fields=('erasure', 'kind', 'remote_id'), name='one_remote_deletion_per_copy'), models.UniqueConstraint(condition=models.Q(('erasure__isnull', True)), fields=('kind', 'remote_id'), name='one_unattached_remote_deletion_per_copy')],
            },
        ),
    ]
