"""Every existing profile becomes an identity of a contact: profiles with the same E.164 number
share one; the person's fields move to it (a staff-typed value wins, then the newest one)."""

from django.db import migrations

PERSON_FIELDS = ("first_name", "last_name", "company", "email")


def group_profiles(apps, schema_editor):
    ClientProfile = apps.get_model("profiles", "ClientProfile")
    Contact = apps.get_model("profiles", "Contact")
    groups = {}
    for profile in ClientProfile.objects.order_by("-updated_at", "-pk").iterator():
        key = profile.phone_number or f"#{profile.pk}"
        groups.setdefault(key, []).append(profile)
    for key, profiles in groups.items():
        contact = Contact(phone_number=None if key.startswith("#") else key)
        sources = {}
        # Newest first: the first staff value, else the first value at all, wins.
        for is_staff_pass in (True, False):
            for profile in profiles:
                for name in PERSON_FIELDS:
                    value = getattr(profile, name)
                    source = (profile.field_sources or {}).get(name) or {}
                    is_staff = isinstance(source, dict) and source.get("source") == "staff"
                    if name in sources or not (value or is_staff) or is_staff != is_staff_pass:
                        continue
                    setattr(contact, name, value)
                    sources[name] = source
        contact.field_sources = {name: source for name, source in sources.items() if source}
        declined = [p.details_declined_at for p in profiles if p.details_declined_at]
        contact.details_declined_at = min(declined) if declined else None
        # A STOP on any channel stands for the person.
        opted_out = [p.opted_out_at for p in profiles if p.opted_out_at]
        opted_in = [p.opted_in_at for p in profiles if p.opted_in_at]
        contact.opted_out_at = max(opted_out) if opted_out else None
        contact.opted_in_at = max(opted_in) if opted_in else None
        contact.save()
        ClientProfile.objects.filter(pk__in=[p.pk for p in profiles]).update(contact=contact)


def ungroup_profiles(apps, schema_editor):
    ClientProfile = apps.get_model("profiles", "ClientProfile")
    for profile in ClientProfile.objects.select_related("contact").iterator():
        contact = profile.contact
        for name in (*PERSON_FIELDS, "field_sources", "details_declined_at", "opted_out_at", "opted_in_at"):
            setattr(profile, name, getattr(contact, name))
        profile.save()


class Migration(migrations.Migration):
    dependencies = [
        ("profiles", "0002_contact"),
    ]

    operations = [migrations.RunPython(group_profiles, ungroup_profiles)]
