"""factory-boy factories and a helper that sends through the service layer.

Use ``send`` (``services.send_message``) whenever a test cares about counters, watermarks,
``last_message`` or audit rows; ``MessageFactory`` writes raw rows and is only for volume
(pagination), where those do not matter.
"""

from __future__ import annotations

import uuid
from typing import Any

import factory
from django.contrib.auth import get_user_model
from factory.django import DjangoModelFactory

from django_support_chat import services
from django_support_chat.models import Conversation, Message, Side
from django_support_chat.text import render_text


class UserFactory(DjangoModelFactory):
    class Meta:
        model = get_user_model()

    username = factory.Sequence(lambda n: f"user{n}")
    first_name = factory.Sequence(lambda n: f"First{n}")
    last_name = factory.Sequence(lambda n: f"Last{n}")
    email = factory.LazyAttribute(lambda user: f"{user.username}@example.com")
    password = factory.django.Password("password")
    is_active = True
    is_staff = False
    is_superuser = False

    class Params:
        customer = factory.Trait(is_staff=False, is_superuser=False)
        staff = factory.Trait(is_staff=True, is_superuser=False)
        admin = factory.Trait(is_staff=True, is_superuser=True)


class ConversationFactory(DjangoModelFactory):
    class Meta:
        model = Conversation

    customer = factory.SubFactory(UserFactory, customer=True)


class MessageFactory(DjangoModelFactory):
    """Raw rows: no counters, watermarks or events. For volume only."""

    class Meta:
        model = Message

    conversation = factory.SubFactory(ConversationFactory)
    sender = factory.LazyAttribute(lambda message: message.conversation.customer)
    sender_side = Side.USER
    text = factory.Sequence(lambda n: f"message {n}")
    html = factory.LazyAttribute(lambda message: render_text(message.text))  # as a send stores
    client_id = factory.LazyFunction(uuid.uuid4)
    # Unique per conversation (globally, even); not 1, 2, 3 within one: raw rows only.
    seq = factory.Sequence(lambda n: n + 1)


def send(
    conversation: Conversation, sender: Any, text: str = "hello", client_id: Any = None
) -> Message:
    """Send through the service layer and return the stored message."""
    message, _created = services.send_message(conversation, sender, text, client_id or uuid.uuid4())
    return message
