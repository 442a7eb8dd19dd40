"""Staff inbox views: server-rendered pages and htmx partials.

Every page extends ``INBOX_BASE_TEMPLATE``. htmx requests get the partial their target
needs (``#sc-list``, ``#sc-pane``, ...). Every change goes through ``services`` (which
audit-logs staff actions and publishes the realtime events); views only check access,
parse input and render.

The list state lives in the URL: ``/<mount>/`` or ``/<mount>/<id>/`` (the open
conversation) with ``?filter=all|unread|open|mine`` and ``?q=<search>``.

Template context: every name the views pass starts with ``sc_`` (and so do the loop
variables in the templates), because the pages render inside the host's layout, whose
``messages``, ``user``, ``request``, ``perms``... must stay the host's. People are named
with ``names`` here, never by the templates (the user model may have no ``get_full_name``,
``email`` or ``username``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache, wraps
from typing import Any
from urllib.parse import urlencode

from django.contrib.auth.views import redirect_to_login
from django.contrib.staticfiles import finders
from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import OperationalError, transaction
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.loader import render_to_string
from django.templatetags.static import static
from django.urls import reverse
from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import (
    HttpResponseClientRedirect,
    push_url,
    replace_url,
    trigger_client_event,
)
from django_htmx.middleware import HtmxDetails

from .. import icons, queries, roles, sendqueue, services
from ..conf import chat_settings
from ..exceptions import ChatError
from ..models import Conversation, Message, NotificationPreference, Side
from ..names import customer_name, staff_label
from ..payloads import message_html
from .forms import (
    BULK_LIMIT,
    FILTERS,
    AlertPreferencesForm,
    AssignForm,
    BulkForm,
    InboxStateForm,
    ReplyForm,
    StatusForm,
)

PANE_TARGETS = {"sc-pane"}
LIST_TARGETS = {"sc-list"}
SNIPPET_LENGTH = 120


# Access -------------------------------------------------------------------------------------


def _htmx(request: HttpRequest) -> HtmxDetails:
    # Works without django-htmx's middleware too.
    return getattr(request, "htmx", None) or HtmxDetails(request)


def staff_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Anonymous users go to the login page; signed-in users who are not staff get 403."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return _staff_view(view, request, *args, **kwargs)
        except OperationalError:
            # No database connection (pool timeout, "too many clients"): 503, not a 500.
            sendqueue.note_rejected("inbox", sendqueue.UNAVAILABLE, method=request.method)
            return _busy(request, _("The service is unavailable; try again shortly."))

    return wrapper


def _staff_view(
    view: Callable[..., HttpResponse], request: HttpRequest, *args: Any, **kwargs: Any
) -> HttpResponse:
    if not request.user.is_authenticated:
        htmx = _htmx(request)
        if htmx:  # an expired session inside the page: send the whole page to login
            target = htmx.current_url_abs_path or reverse("support_chat_inbox:inbox")
            return HttpResponseClientRedirect(redirect_to_login(target).url)
        return redirect_to_login(request.get_full_path())
    if not roles.is_staff(request.user):
        raise PermissionDenied
    return view(request, *args, **kwargs)


# State in the URL ---------------------------------------------------------------------------


@dataclass(frozen=True)
class InboxState:
    filter: str = "all"
    q: str = ""
    conversation_id: int | None = None

    @classmethod
    def from_request(cls, request: HttpRequest, conversation_id: int | None = None) -> InboxState:
        filter_, q = InboxStateForm(request.GET).state()
        return cls(filter=filter_, q=q, conversation_id=conversation_id)

    def query(self, **changes: Any) -> str:
        values = {"filter": self.filter, "q": self.q, **changes}
        params = {}
        if values["filter"] != "all":
            params["filter"] = values["filter"]
        if values["q"]:
            params["q"] = values["q"]
        return f"?{urlencode(params)}" if params else ""

    def url(self, conversation_id: int | str | None = "keep", **changes: Any) -> str:
        pk = self.conversation_id if conversation_id == "keep" else conversation_id
        if pk:
            path = reverse("support_chat_inbox:conversation", args=[pk])
        else:
            path = reverse("support_chat_inbox:inbox")
        return path + self.query(**changes)

    @property
    def list_url(self) -> str:
        return self.url(conversation_id=None)

    @property
    def filter_kwargs(self) -> dict[str, Any]:
        return {**FILTERS[self.filter][1], "search": self.q or None}

    def filters(self) -> list[dict[str, Any]]:
        return [
            {"key": key, "label": label, "url": self.url(filter=key), "active": key == self.filter}
            for key, (label, _kwargs) in FILTERS.items()
        ]

    def empty_text(self) -> str:
        if self.q:
            return _("No conversations match “%(q)s”.") % {"q": self.q}
        return {
            "all": _(
                "No conversations yet. When a customer writes from the chat widget, the conversation shows up here."
            ),
            "unread": _("You're all caught up: no unread conversations."),
            "open": _("No open conversations. Closed ones are under All."),
            "mine": _("Nothing is assigned to you. Open a conversation and choose Assign to me."),
        }[self.filter]


# Display models (everything the templates show, computed once, no query per row) -----------


def initials(name: str) -> str:
    parts = [part for part in name.replace(".", " ").replace("_", " ").split() if part]
    if not parts:
        return "?"
    letters = parts[0][0] + (parts[-1][0] if len(parts) > 1 else parts[0][1:2])
    return letters.upper()


def short_time(value: datetime) -> str:
    local = timezone.localtime(value)
    if local.date() == timezone.localdate():
        return local.strftime("%H:%M")
    return f"{local.strftime('%b')} {local.day}"


def customer_email(user: Any, shown_name: str = "") -> str:
    """The customer's email address, if the user model has one (its ``EMAIL_FIELD``) and it
    is set; "" too when it is already the name shown (the login fallback)."""
    if user is None:
        return ""
    get_field_name = getattr(user, "get_email_field_name", None)
    try:
        field_name = get_field_name() if callable(get_field_name) else None
    except Exception:
        field_name = None
    value = getattr(user, field_name, "") if isinstance(field_name, str) else ""
    value = value.strip() if isinstance(value, str) else ""
    return "" if value == shown_name else value


@dataclass(frozen=True)
class StaffOption:
    """One staff member in the assignment menus: named for colleagues (``staff_label``)."""

    pk: Any
    label: str
    me: bool = False


def staff_options(request: HttpRequest, staff: list[Any]) -> list[StaffOption]:
    return [StaffOption(u.pk, staff_label(u), u.pk == request.user.pk) for u in staff]


@dataclass
class Row:
    conversation: Conversation
    name: str = ""
    initials: str = ""
    snippet: str = ""
    snippet_from_staff: bool = False
    time: str = ""
    active: bool = False
    assignee: str = ""

    def __post_init__(self) -> None:
        c = self.conversation
        self.name = customer_name(c.customer)
        self.assignee = staff_label(c.assigned_to) if c.assigned_to_id else ""
        self.initials = initials(self.name)
        if c.last_message is not None:
            text = " ".join(c.last_message.text.split())
            self.snippet = text[: SNIPPET_LENGTH - 1] + "…" if len(text) > SNIPPET_LENGTH else text
            self.snippet_from_staff = c.last_message.sender_side == Side.STAFF
        self.time = short_time(c.last_message_at)


@dataclass
class MessageView:
    message: Message
    html: SafeString = field(default_factory=SafeString)
    from_staff: bool = False
    sender_name: str = ""
    status: str = ""
    time: str = ""
    day: str = ""
    new_day: bool = False


def _sender_name(message: Message) -> str:
    if message.sender is None:
        return _("Deleted user")
    if message.sender_side == Side.STAFF:
        return staff_label(message.sender)
    return customer_name(message.sender)


def message_views(messages: list[Message], conversation: Conversation) -> list[MessageView]:
    views, previous_day = [], None
    today = timezone.localdate()
    for message in messages:
        local = timezone.localtime(message.created_at)
        day = local.date()
        views.append(
            MessageView(
                message=message,
                # Escaped, then bare URLs linked: the safe HTML stored with the message
                # (Message.html), never the raw text; no bleach on read.
                html=mark_safe(message_html(message)),
                from_staff=message.sender_side == Side.STAFF,
                sender_name=_sender_name(message),
                status=message.status_for_recipient(conversation),
                time=local.strftime("%H:%M"),
                day=_("Today") if day == today else local.strftime("%A, %b ") + str(local.day),
                new_day=day != previous_day,
            )
        )
        previous_day = day
    return views


@lru_cache(maxsize=1)
def vendor_assets() -> dict[str, bool]:
    """Which of Bootstrap / Font Awesome (pip packages) the default base template can link."""
    return {
        "bootstrap": bool(finders.find("bootstrap/css/bootstrap.min.css")),
        "bootstrap_js": bool(finders.find("bootstrap/js/bootstrap.bundle.min.js")),
        "fontawesome": bool(finders.find("fontawesomefree/css/all.min.css")),
    }


# Context ------------------------------------------------------------------------------------


def list_context(
    request: HttpRequest, state: InboxState, cursor: str | None = None
) -> dict[str, Any]:
    """The list: ``sc_rows``, ``sc_more_url``, ``sc_empty_text``."""
    conversations = queries.filter_inbox(request.user, **state.filter_kwargs)
    page, next_cursor = queries.keyset_page(conversations, cursor, chat_settings.INBOX_PAGE_SIZE)
    rows = [Row(c, active=c.pk == state.conversation_id) for c in page]
    more_url = None
    if next_cursor:
        params = {"filter": state.filter, "q": state.q, "cursor": next_cursor}
        if state.conversation_id:
            params["c"] = state.conversation_id
        more_url = reverse("support_chat_inbox:rows") + "?" + urlencode(params)
    return {"sc_rows": rows, "sc_more_url": more_url, "sc_empty_text": state.empty_text()}


def pane_context(
    request: HttpRequest, state: InboxState, conversation: Conversation, staff: list[Any]
) -> dict[str, Any]:
    size = chat_settings.HISTORY_PAGE_SIZE
    latest = list(
        Message.objects.filter(conversation=conversation)
        .select_related("sender")
        .order_by("-id")[: size + 1]
    )
    messages = list(reversed(latest[:size]))
    return {
        "sc_messages": message_views(messages, conversation),
        "sc_earlier_url": _earlier_url(conversation, messages) if len(latest) > size else None,
        **header_context(request, state, conversation, staff),
        "sc_client_id": uuid.uuid4(),
        "sc_max_length": chat_settings.MAX_MESSAGE_LENGTH,
    }


def header_context(
    request: HttpRequest,
    state: InboxState,
    conversation: Conversation,
    staff: list[Any] | None = None,
) -> dict[str, Any]:
    row = Row(conversation)
    return {
        "sc_conversation": conversation,
        "sc_row": row,
        "sc_customer_email": customer_email(conversation.customer, row.name),
        "sc_staff": staff_options(request, services.staff_users() if staff is None else staff),
        "sc_state": state,
        "sc_user_id": request.user.pk,
    }


def _earlier_url(conversation: Conversation, messages: list[Message]) -> str:
    return (
        reverse("support_chat_inbox:messages", args=[conversation.pk]) + f"?before={messages[0].pk}"
    )


def js_texts() -> dict[str, str]:
    """Copy the inbox script shows, translated (rendered with ``json_script``)."""
    return {
        "live": _("Live"),
        "reconnecting": _("Reconnecting…"),
        "offline": _("Offline"),
        "online": _("Online"),
        "offline_user": _("Offline"),
        "today": _("Today"),
        "yesterday": _("Yesterday"),
        "typing": _("%s is typing…"),
        "customer": _("The customer"),
        "colleague": _("A colleague"),
        "sent": _("Sent"),
        "delivered": _("Delivered"),
        "read": _("Read"),
        "selected": _("%d selected"),
        "select_hint": _("Select to act on several"),
        "dismiss": _("Dismiss"),
        "network": _("Could not reach the server. Check your connection and try again."),
        "busy": _("The server is busy. Your reply will be sent again shortly."),
        "toast_new": _("New conversation"),
        "toast_message": _("New message"),
        "toast_assigned": _("Assigned to you"),
        "toast_assigned_text": _("A conversation was assigned to you."),
        "toast_started": _("Started a conversation."),
        "sound_on": _("Sound on"),
        "sound_off": _("Sound off"),
        "desktop_on": _("Desktop alerts on"),
        "desktop_off": _("Desktop alerts off"),
        "desktop_blocked": _("Desktop alerts blocked by the browser"),
        "desktop_unsupported": _("Desktop alerts are not supported by this browser"),
        "save_failed": _("Could not save your alert settings. Try again."),
    }


def base_context(request: HttpRequest, state: InboxState) -> dict[str, Any]:
    prefix = "/" + chat_settings.WEBSOCKET_PATH_PREFIX.strip("/") + "/"
    vendor = vendor_assets()
    staff = services.staff_users()
    return {
        "sc_state": state,
        "sc_filters": state.filters(),
        "sc_base_template": chat_settings.INBOX_BASE_TEMPLATE,
        "sc_include_htmx": chat_settings.INBOX_INCLUDE_HTMX,
        # The default base template links Font Awesome only when the icons use it.
        "sc_vendor": {
            **vendor,
            "fontawesome": vendor["fontawesome"] and icons.mode() == icons.FONT_AWESOME,
        },
        "sc_script_icons": icons.INBOX_SCRIPT_ICONS,
        "sc_ws_lobby": prefix + "admin/",
        "sc_ws_conversation": prefix + "admin/0/",
        "sc_staff_users": staff,
        "sc_staff": staff_options(request, staff),
        "sc_user_id": request.user.pk,
        "sc_bulk_limit": BULK_LIMIT,
        "sc_js_texts": js_texts(),
        "sc_urls": {
            "inbox": reverse("support_chat_inbox:inbox"),
            "rows": reverse("support_chat_inbox:rows"),
            "row": reverse("support_chat_inbox:row", args=[0]),
            "conversation": reverse("support_chat_inbox:conversation", args=[0]),
            "bulk": reverse("support_chat_inbox:bulk"),
            "unread": reverse("support_chat_inbox:unread_counts"),
            "preferences": reverse("support_chat_inbox:preferences"),
        },
    }


# Alerts (toasts, the tab title's count, sound, desktop notifications) -----------------------


def unread_counts() -> dict[str, int]:
    """Customer messages no staff member has read, per conversation (only those with any):
    the tab title shows their sum, which is what the "Unread" filter lists."""
    pairs = Conversation.objects.filter(unread_staff_count__gt=0).values_list(
        "pk", "unread_staff_count"
    )
    return {str(pk): count for pk, count in pairs}


def sound_url() -> str:
    return chat_settings.INBOX_SOUND_URL or static("support_chat/inbox/chime.wav")


def alerts_context(request: HttpRequest) -> dict[str, Any]:
    preference = NotificationPreference.for_user(request.user)
    counts = unread_counts()
    return {
        "sound": preference.sound,
        "desktop": preference.desktop,
        "sound_url": sound_url(),
        "unread": counts,
        "unread_total": sum(counts.values()),
    }


def _conversation(pk: int) -> Conversation:
    return get_object_or_404(
        Conversation.objects.select_related("customer", "assigned_to", "last_message"), pk=pk
    )


def _render(
    request: HttpRequest, template: str, context: dict[str, Any], status: int = 200
) -> HttpResponse:
    return HttpResponse(render_to_string(template, context, request=request), status=status)


# Pages --------------------------------------------------------------------------------------


@require_GET
@staff_required
def inbox(request: HttpRequest, pk: int | None = None) -> HttpResponse:
    """The inbox page; with ``pk``, with that conversation open. htmx requests targeting
    the list or the conversation pane get just that part (and the URL pushed)."""
    htmx = _htmx(request)
    partial = (
        bool(htmx)
        and not htmx.history_restore_request
        and htmx.target in PANE_TARGETS | LIST_TARGETS
    )
    open_pk = pk
    if pk is None and partial and htmx.target in LIST_TARGETS:
        open_pk = _int(request.GET.get("c"))  # the search form sends the open conversation
    state = InboxState.from_request(request, open_pk)
    conversation = _conversation(pk) if pk else None
    context = base_context(request, state)
    if partial:
        if htmx.target in LIST_TARGETS:
            context.update(list_context(request, state))
            response = _render(request, "support_chat/inbox/partials/list_response.html", context)
        else:
            if conversation is not None:
                staff = context["sc_staff_users"]
                context.update(pane_context(request, state, conversation, staff))
            response = _render(request, "support_chat/inbox/partials/pane_response.html", context)
        # Typing in the search box replaces the history entry; everything else adds one.
        if htmx.trigger == "sc-search":
            return replace_url(response, state.url())
        return push_url(response, state.url())
    context.update(list_context(request, state))
    if conversation is not None:
        context.update(pane_context(request, state, conversation, context["sc_staff_users"]))
    context["sc_alerts"] = alerts_context(request)  # the whole page only, not its partials
    return _render(request, "support_chat/inbox/page.html", context)


@require_GET
@staff_required
def rows(request: HttpRequest) -> HttpResponse:
    """The next page of the list ("Load more"): rows and the next button."""
    state = InboxState.from_request(request, _int(request.GET.get("c")))
    try:
        context = list_context(request, state, request.GET.get("cursor") or None)
    except queries.InvalidCursor:
        return HttpResponse(_("Invalid cursor."), status=400, content_type="text/plain")
    context["sc_state"] = state
    return _render(request, "support_chat/inbox/partials/rows.html", context)


@require_GET
@staff_required
def row(request: HttpRequest, pk: int) -> HttpResponse:
    """One list row, for live updates; 204 when the conversation does not match the
    list's filter and search (the page then drops or skips it)."""
    state = InboxState.from_request(request, _int(request.GET.get("c")))
    conversation = queries.filter_inbox(request.user, **state.filter_kwargs).filter(pk=pk).first()
    if conversation is None:
        if not Conversation.objects.filter(pk=pk).exists():
            raise Http404
        return HttpResponse(status=204)
    context = {"sc_row": Row(conversation, active=pk == state.conversation_id), "sc_state": state}
    return _render(request, "support_chat/inbox/partials/row.html", context)


@require_GET
@staff_required
def header(request: HttpRequest, pk: int) -> HttpResponse:
    """The conversation header alone, re-rendered when another staff member changes it."""
    conversation = _conversation(pk)
    state = InboxState.from_request(request, pk)
    return _render(
        request,
        "support_chat/inbox/partials/header.html",
        header_context(request, state, conversation),
    )


@require_GET
@staff_required
def history(request: HttpRequest, pk: int) -> HttpResponse:
    """Older messages (``?before=<id>``), oldest first, with the next "earlier" button."""
    conversation = _conversation(pk)
    before = _int(request.GET.get("before"))
    if before is None:
        return HttpResponse(
            _("before=<message id> is required."), status=400, content_type="text/plain"
        )
    size = chat_settings.HISTORY_PAGE_SIZE
    page = list(
        Message.objects.filter(conversation=conversation, id__lt=before)
        .select_related("sender")
        .order_by("-id")[: size + 1]
    )
    messages = list(reversed(page[:size]))
    context = {
        "sc_conversation": conversation,
        "sc_messages": message_views(messages, conversation),
        "sc_earlier_url": _earlier_url(conversation, messages) if len(page) > size else None,
    }
    return _render(request, "support_chat/inbox/partials/messages_page.html", context)


def _int(value: Any) -> int | None:
    text = str(value or "")
    return int(text) if text.isascii() and text.isdigit() and len(text) < 19 else None


# Actions ------------------------------------------------------------------------------------


def _changed(response: HttpResponse, ids: list[int]) -> HttpResponse:
    """Tell the page which list rows to refresh (the lobby socket does too, when it is up)."""
    return trigger_client_event(response, "sc:changed", {"ids": ids})


def _error(request: HttpRequest, message: str, status: int) -> HttpResponse:
    """Show ``message`` in the page's alert area (htmx) or as plain text."""
    if not _htmx(request):
        return HttpResponse(message, status=status, content_type="text/plain")
    response = _render(
        request, "support_chat/inbox/partials/alert.html", {"sc_alert": message}, status
    )
    response["HX-Retarget"] = "#sc-alerts"
    response["HX-Reswap"] = "innerHTML"
    return response


def _busy(request: HttpRequest, message: str, retry_after: float | None = None) -> HttpResponse:
    """503 with ``Retry-After`` (pushback, or no database connection): shown as a warning
    in the alert area; the composer sends the reply again by itself (inbox.js)."""
    if _htmx(request):
        context = {"sc_alert": message, "sc_alert_level": "warning"}
        response = _render(request, "support_chat/inbox/partials/alert.html", context, 503)
        response["HX-Retarget"] = "#sc-alerts"
        response["HX-Reswap"] = "innerHTML"
    else:
        response = HttpResponse(message, status=503, content_type="text/plain")
    response["Retry-After"] = sendqueue.retry_after_header(retry_after)
    return response


def _messages_of(error: DjangoValidationError) -> str:
    if hasattr(error, "error_dict"):
        return " ".join(m for messages in error.message_dict.values() for m in messages)
    return " ".join(error.messages)


def _form_error(request: HttpRequest, form: Any) -> HttpResponse:
    text = " ".join(str(m) for messages in form.errors.values() for m in messages)
    return _error(request, text, 422)


def _done(request: HttpRequest, state: InboxState) -> HttpResponse | None:
    """Without htmx, actions redirect back to the page (post/redirect/get)."""
    if not _htmx(request):
        return HttpResponseRedirect(state.url())
    return None


def _header_response(request: HttpRequest, conversation: Conversation) -> HttpResponse:
    state = InboxState.from_request(request, conversation.pk)
    fallback = _done(request, state)
    if fallback is not None:
        return fallback
    context = header_context(request, state, conversation)
    response = _render(request, "support_chat/inbox/partials/header.html", context)
    return _changed(response, [conversation.pk])


@require_POST
@staff_required
def reply(request: HttpRequest, pk: int) -> HttpResponse:
    # Pushback (docs/protocol.md, "Slowing down"): a slot until the reply is stored.
    try:
        slot = sendqueue.gate.acquire("inbox", client_id=lambda: request.POST.get("client_id"))
    except sendqueue.Overloaded as exc:
        message = _("The server is busy. Your reply will be sent again shortly.")
        return _busy(request, message, exc.retry_after)
    with slot:
        return _reply(request, pk)


def _reply(request: HttpRequest, pk: int) -> HttpResponse:
    conversation = _conversation(pk)
    form = ReplyForm(request.POST)
    if not form.is_valid():
        return _form_error(request, form)
    try:
        message, _created = services.send_message(
            conversation, request.user, form.cleaned_data["text"], form.cleaned_data["client_id"]
        )
    except DjangoValidationError as exc:
        return _error(request, _messages_of(exc), 422)
    except ChatError as exc:
        return _error(request, exc.message, exc.status_code)
    fallback = _done(request, InboxState.from_request(request, pk))
    if fallback is not None:
        return fallback
    message = Message.objects.select_related("sender").get(pk=message.pk)
    context = {
        "sc_messages": message_views([message], conversation),
        "sc_conversation": conversation,
    }
    response = _render(request, "support_chat/inbox/partials/messages.html", context)
    return _changed(response, [pk])


@require_POST
@staff_required
def assign(request: HttpRequest, pk: int) -> HttpResponse:
    conversation = _conversation(pk)
    form = AssignForm(request.POST, actor=request.user)
    if not form.is_valid():
        return _form_error(request, form)
    try:
        services.assign(conversation, request.user, form.cleaned_data["assignee"])
    except DjangoValidationError as exc:
        return _error(request, _messages_of(exc), 422)
    conversation = _conversation(pk)
    return _header_response(request, conversation)


@require_POST
@staff_required
def set_status(request: HttpRequest, pk: int) -> HttpResponse:
    """Close or reopen (the open/closed switch posts ``status``)."""
    conversation = _conversation(pk)
    form = StatusForm(request.POST)
    if not form.is_valid():
        return _form_error(request, form)
    if form.cleaned_data["status"] == Conversation.Status.CLOSED:
        services.close(conversation, request.user)
    else:
        services.reopen(conversation, request.user)
    return _header_response(request, conversation)


@require_POST
@staff_required
def mark_read(request: HttpRequest, pk: int) -> HttpResponse:
    """Staff have read the conversation (posted when it opens). The customer's read
    receipt follows from the service's ``message:read`` event."""
    conversation = _conversation(pk)
    services.mark_read(conversation, request.user)
    fallback = _done(request, InboxState.from_request(request, pk))
    if fallback is not None:
        return fallback
    return _changed(HttpResponse(status=204), [pk])


@require_POST
@staff_required
def mark_unread(request: HttpRequest, pk: int) -> HttpResponse:
    """Flag the conversation unread again and close it in the page (it would be read
    again at once if it stayed open)."""
    conversation = _conversation(pk)
    services.mark_unread(conversation, request.user)
    state = InboxState.from_request(request, None)
    fallback = _done(request, state)
    if fallback is not None:
        return fallback
    context = base_context(request, state)
    response = _render(request, "support_chat/inbox/partials/pane_response.html", context)
    return _changed(push_url(response, state.url()), [pk])


class _BulkMissing(Exception):
    """A selected conversation was deleted meanwhile: roll the bulk action back."""


@require_POST
@staff_required
def bulk(request: HttpRequest) -> HttpResponse:
    """Mark several conversations read, or assign them: all or nothing.

    One service call each, inside one transaction (the services' own become savepoints),
    in id order so that two bulk actions lock rows in the same order. If any conversation
    fails, or no longer exists, everything is rolled back: no change, no event, no
    signal, and a 4xx saying so."""
    form = BulkForm(request.POST, actor=request.user)
    if not form.is_valid():
        return _form_error(request, form)
    action, ids = form.cleaned_data["action"], form.cleaned_data["ids"]
    nothing = _("Nothing was changed.")
    try:
        with transaction.atomic():
            conversations = list(
                Conversation.objects.select_related("customer", "assigned_to", "last_message")
                .filter(pk__in=ids)
                .order_by("pk")
            )
            if len(conversations) != len(ids):
                raise _BulkMissing
            for conversation in conversations:
                if action == "read":
                    services.mark_read(conversation, request.user)
                else:
                    services.assign(conversation, request.user, form.cleaned_data["assignee"])
    except _BulkMissing:
        text = _("Some of the selected conversations no longer exist.")
        return _error(request, f"{text} {nothing}", 409)
    except DjangoValidationError as exc:
        return _error(request, f"{_messages_of(exc)} {nothing}", 422)
    except ChatError as exc:
        return _error(request, f"{exc.message} {nothing}", exc.status_code)
    count = len(conversations)
    if action == "read":
        text = ngettext(
            "Marked %(count)d conversation read.", "Marked %(count)d conversations read.", count
        )
    else:
        assignee = form.cleaned_data["assignee"]
        text = (
            ngettext(
                "Assigned %(count)d conversation to %(name)s.",
                "Assigned %(count)d conversations to %(name)s.",
                count,
            )
            if assignee is not None
            else ngettext(
                "Unassigned %(count)d conversation.", "Unassigned %(count)d conversations.", count
            )
        )
    message = text % {"count": count, "name": staff_label(form.cleaned_data.get("assignee"))}
    fallback = _done(request, InboxState.from_request(request))
    if fallback is not None:
        return fallback
    response = _render(
        request,
        "support_chat/inbox/partials/alert.html",
        {"sc_alert": message, "sc_alert_level": "success"},
    )
    return _changed(response, [c.pk for c in conversations])


@require_GET
@staff_required
def unread(request: HttpRequest) -> JsonResponse:
    """The unread counts again (the page asks after every reconnect of its lobby socket:
    events sent while it was away are not replayed)."""
    counts = unread_counts()
    return JsonResponse({"unread": counts, "total": sum(counts.values())})


@require_POST
@staff_required
def preferences(request: HttpRequest) -> JsonResponse:
    """Save the inbox alert toggles (``sound``, ``desktop``: ``true``/``false``, either or
    both) in the staff member's NotificationPreference; 400 and no change on bad input."""
    form = AlertPreferencesForm(request.POST)
    if not form.is_valid():
        errors = {name: [str(m) for m in messages] for name, messages in form.errors.items()}
        return JsonResponse({"errors": errors}, status=400)
    changes = {name: value for name, value in form.cleaned_data.items() if value is not None}
    preference = services.update_notification_preferences(request.user, **changes)
    return JsonResponse({"sound": preference.sound, "desktop": preference.desktop})
