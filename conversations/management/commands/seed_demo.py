"""`manage.py seed_demo`: a few realistic conversations so the admin and the live inbox are not empty."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from agents.demo import load_demo_agents, remove_demo_agents
from conversations.models import Channel, Conversation, Message, Provider
from knowledge.services import load_demo_knowledge, remove_demo_knowledge
from profiles.extraction import EXTRACTED, STAFF
from profiles.models import ClientProfile, Contact

DEMO_PREFIX = "demo."
# Where `make run` serves the app when PUBLIC_BASE_URL is unset: the demo tools call it.
DEMO_PORT = 8000
IN, OUT = Message.Direction.INBOUND, Message.Direction.OUTBOUND
CUSTOMER, BOT, STAFF_AUTHOR = Message.Author.CUSTOMER, Message.Author.BOT, Message.Author.STAFF


class Command(BaseCommand):
    help = (
        "Create demo conversations on every channel (a taken-over one, a failed delivery, a "
        "half-filled profile) so the admin and the live inbox have something to show, and a small "
        "knowledge base of a fictional tea shop (shipping, returns, hours, payment, orders; English "
        "and Italian) for the bot to answer from. Safe to re-run: demo data is recognised and "
        "replaced. Never run it on a production database."
    )

    def add_arguments(self, parser):
        parser.add_argument("--remove", action="store_true", help="Delete the demo data and stop.")

    @transaction.atomic
    def handle(self, *args, remove: bool, **options):
        removed, _ = Contact.objects.filter(identities__external_id__startswith=DEMO_PREFIX).delete()
        if remove:
            articles = remove_demo_knowledge()
            remove_demo_agents()
            self.stdout.write(self.style.SUCCESS(f"Demo data removed ({removed} rows, {articles} articles)."))
            return
        staff = get_user_model().objects.filter(is_staff=True, is_active=True).order_by("pk").first()
        now = timezone.now()
        self._meta_customer(now)
        self._twilio_taken_over(now, staff)
        self._sms_failed_delivery(now)
        self._webchat_visitor(now)
        articles = load_demo_knowledge()
        agents = load_demo_agents(base_url=settings.PUBLIC_BASE_URL or f"http://localhost:{DEMO_PORT}")
        self.stdout.write(
            self.style.SUCCESS(
                "Created 4 demo conversations (WhatsApp via Meta and Twilio, SMS, web chat) and a demo "
                f"knowledge base of {len(articles)} articles, and {len(agents)} agents (triage, billing, shipping) "
                "with the order tools of /demo/orders/ (served with DEBUG on). Open /live/, /simulator/ or the admin; "
                "`seed_demo --remove` deletes them."
            )
        )

    def _conversation(
        self, *, provider, external_id, channel, business, now, phone_number="", display_name="", **contact_fields
    ) -> Conversation:
        # No join number: a real customer writing from a demo number never joins a demo contact.
        profile = ClientProfile.objects.create(
            contact=Contact.objects.create(**contact_fields),
            provider=provider,
            external_id=DEMO_PREFIX + external_id,
            phone_number=phone_number,
            display_name=display_name,
        )
        return Conversation.objects.create(
            profile=profile, channel=channel, business_address=business, last_customer_message_at=now
        )

    def _messages(self, conversation: Conversation, now, turns: list[tuple]) -> list[Message]:
        messages, previous = [], None
        for minutes_ago, direction, author, text, status, *error in turns:
            message = Message.objects.create(
                conversation=conversation,
                direction=direction,
                author=author,
                text=text,
                provider=conversation.provider,
                status=status,
                in_reply_to=previous if author == BOT else None,
                error_code=error[0] if error else "",
                error_title=error[1] if error else "",
                input_tokens=420 if author == BOT else None,
                output_tokens=36 if author == BOT else None,
                model="gpt-5-mini" if author == BOT else "",
            )
            Message.objects.filter(pk=message.pk).update(created_at=now - timedelta(minutes=minutes_ago))
            previous = message if author == CUSTOMER else previous
            messages.append(message)
        return messages

    def _meta_customer(self, now) -> None:
        conversation = self._conversation(
            provider=Provider.META,
            external_id="US.2000000000000000001",
            channel=Channel.META_WHATSAPP,
            business="110000000000001",
            now=now,
            phone_number="+393471234567",
            display_name="Giulia",
            first_name="Giulia",
            field_sources={"first_name": {"source": EXTRACTED, "at": now.isoformat()}},
        )
        self._messages(
            conversation,
            now,
            [
                (42, IN, CUSTOMER, "Ciao! Sono Giulia, fate consegne a Milano?", Message.Status.HANDLED),
                (41, OUT, BOT, "Ciao Giulia! Sì, consegniamo a Milano in 24 ore. 🚚", Message.Status.READ),
                (12, IN, CUSTOMER, "Perfetto, quanto costa la spedizione?", Message.Status.HANDLED),
                (11, OUT, BOT, "La spedizione è gratuita sopra i 50 €, altrimenti 4,90 €.", Message.Status.DELIVERED),
            ],
        )

    def _twilio_taken_over(self, now, staff) -> None:
        conversation = self._conversation(
            provider=Provider.TWILIO,
            external_id="whatsapp:+15557654321",
            channel=Channel.TWILIO_WHATSAPP,
            business="whatsapp:+15550001234",
            now=now,
            phone_number="+15557654321",
            display_name="Grace Hopper",
            first_name="Grace",
            last_name="Hopper",
            company="Navy Labs",
            field_sources={name: {"source": STAFF, "at": now.isoformat()} for name in ("last_name", "company")},
        )
        self._messages(
            conversation,
            now,
            [
                (30, IN, CUSTOMER, "My order #1042 arrived damaged.", Message.Status.HANDLED),
                (29, OUT, BOT, "I'm sorry to hear that! Could you send a photo of the damage?", Message.Status.READ),
                (20, IN, CUSTOMER, "I'd rather talk to a person, please.", Message.Status.HANDLED),
                (19, OUT, STAFF_AUTHOR, "Hi Grace, Alex here. A replacement ships today.", Message.Status.DELIVERED),
            ],
        )
        Conversation.objects.filter(pk=conversation.pk).update(
            mode=Conversation.Mode.HUMAN, assigned_to=staff, taken_over_at=now - timedelta(minutes=20)
        )

    def _sms_failed_delivery(self, now) -> None:
        conversation = self._conversation(
            provider=Provider.TWILIO,
            external_id="+15551230000",
            channel=Channel.TWILIO_SMS,
            business="+15550001234",
            now=now,
            phone_number="+15551230000",
        )
        self._messages(
            conversation,
            now,
            [
                (8, IN, CUSTOMER, "STATUS 12345", Message.Status.HANDLED),
                (
                    7,
                    OUT,
                    BOT,
                    "Order 12345 left our warehouse this morning.",
                    Message.Status.FAILED,
                    "30003",
                    "Unreachable destination handset",
                ),
            ],
        )

    def _webchat_visitor(self, now) -> None:
        conversation = self._conversation(
            provider=Provider.WEBCHAT,
            external_id="visitor-7f3a",
            channel=Channel.WEBCHAT,
            business="web",
            now=now,
            display_name="Web visitor 7f3a",
        )
        self._messages(
            conversation,
            now,
            [(3, IN, CUSTOMER, "Do you have the teapot in blue? I need an agent to confirm.", Message.Status.HANDLED)],
        )
        Conversation.objects.filter(pk=conversation.pk).update(needs_human=True)
