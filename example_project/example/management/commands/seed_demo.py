"""Create demo accounts and a few conversations, then print how to log in."""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from django_support_chat import services

PASSWORD = "demo"

ACCOUNTS = [
    ("customer", "Casey", "Customer", {}),
    ("customer2", "Robin", "Reader", {}),
    ("staff", "Sam", "Staff", {"is_staff": True}),
    ("admin", "Alex", "Admin", {"is_staff": True, "is_superuser": True}),
]


class Command(BaseCommand):
    help = "Create demo accounts (customer, customer2, staff, admin; password 'demo') and conversations."

    def handle(self, *args: Any, **options: Any) -> None:
        User = get_user_model()
        users = {}
        for username, first, last, flags in ACCOUNTS:
            user, _ = User.objects.get_or_create(
                username=username,
                defaults={
                    "first_name": first,
                    "last_name": last,
                    "email": f"{username}@example.com",
                    **flags,
                },
            )
            user.set_password(PASSWORD)
            user.save()
            users[username] = user

        script = [
            ("customer", "Hi! How do I export a dashboard to PDF?"),
            ("staff", "Hello Casey! Open the dashboard, then Share → Export → PDF."),
            ("customer", "Found it, thanks. Docs: https://example.com/docs/export"),
        ]
        conversation, _ = services.get_or_start_conversation(users["customer"])
        if not conversation.messages.exists():
            for who, text in script:
                services.send_message(conversation, users[who], text, uuid.uuid4())
        other, _ = services.get_or_start_conversation(users["customer2"])
        if not other.messages.exists():
            services.send_message(
                other, users["customer2"], "Is there an annual plan?", uuid.uuid4()
            )

        self.stdout.write(self.style.SUCCESS("Demo data ready. Log in with password 'demo' as:"))
        self.stdout.write("  customer / customer2  a site user with the chat widget")
        self.stdout.write("  staff                 support staff (inbox at /admin/chat/)")
        self.stdout.write("  admin                 superuser (Django admin at /admin/)")
