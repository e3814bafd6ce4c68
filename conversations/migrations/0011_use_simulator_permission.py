"""The permission to use the simulator in production (the Supervisor role; SIMULATOR_ENABLED)."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('conversations', '0010_conversation_business_address_index'),
    ]

    operations = [
        migrations.AlterModelOptions(
            name='conversation',
            options={'permissions': [('take_over', 'Can take over a conversation and hand it back'), ('write', 'Can write to customers (messages and templates)'), ('assign', 'Can assign conversations to staff'), ('triage', 'Can resolve, reopen, snooze and label conversations'), ('add_private_note', 'Can write private notes for colleagues'), ('use_simulator', 'Can write as a simulated customer in the simulator')]},
        ),
    ]
