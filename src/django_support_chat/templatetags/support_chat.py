"""``{% load support_chat %}{% support_chat_widget %}``: the floating chat for signed-in users."""

from __future__ import annotations

from typing import Any

from django import template
from django.db.models import Sum
from django.template.loader import render_to_string
from django.utils.safestring import SafeString, mark_safe

from .. import roles
from ..conf import chat_settings
from ..models import Conversation

register = template.Library()


@register.simple_tag(takes_context=True)
def support_chat_widget(context: template.Context) -> SafeString:
    """Render nothing for anonymous users; the button (with its unread badge) otherwise."""
    request = context.get("request")
    user = getattr(request, "user", None) or context.get("user")
    if user is None or not user.is_authenticated:
        return mark_safe("")
    unread = Conversation.objects.for_customer(user).aggregate(n=Sum("unread_user_count"))["n"] or 0
    widget_context: dict[str, Any] = {
        "unread": unread,
        "texts": chat_settings.WIDGET_TEXTS,
        "offset_desktop": chat_settings.WIDGET_OFFSET_DESKTOP,
        "offset_mobile": chat_settings.WIDGET_OFFSET_MOBILE,
        "is_staff": roles.is_staff(user),
    }
    return mark_safe(
        render_to_string("support_chat/widget/button.html", widget_context, request=request)
    )
