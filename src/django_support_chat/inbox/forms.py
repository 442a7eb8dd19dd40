"""Forms of the staff inbox: the list state in the URL and the staff actions."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from .. import names, roles

# Quick filters: URL value -> (label, filter_inbox() arguments).
FILTERS: dict[str, tuple[Any, dict[str, Any]]] = {
    "all": (_("All"), {}),
    "unread": (_("Unread"), {"unread": True}),
    "open": (_("Open"), {"status": "open"}),
    "mine": (_("Assigned to me"), {"assigned": "me"}),
}

# Largest number of conversations one bulk action may touch.
BULK_LIMIT = 200


class InboxStateForm(forms.Form):
    """``?filter=&q=``. Bad values fall back to the defaults, so an old bookmark still
    opens the inbox."""

    filter = forms.ChoiceField(
        choices=[(key, label) for key, (label, _a) in FILTERS.items()], required=False
    )
    q = forms.CharField(max_length=200, required=False, strip=True)

    def state(self) -> tuple[str, str]:
        """(filter, q), using the default for anything invalid."""
        self.is_valid()
        data = self.cleaned_data
        return data.get("filter") or "all", data.get("q") or ""


class IdListField(forms.Field):
    """Several ``name=<id>`` values: a list of distinct positive ids, at most BULK_LIMIT."""

    widget = forms.MultipleHiddenInput
    default_error_messages = {
        "required": _("Select at least one conversation."),
        "invalid": _("Not a conversation id."),
        "too_many": _("Select at most %(limit)d conversations."),
    }

    def to_python(self, value: Any) -> list[int]:
        if not value:
            return []
        if not isinstance(value, (list, tuple)):
            value = [value]
        ids: list[int] = []
        for item in value:
            text = str(item)
            if not (text.isascii() and text.isdigit() and 0 < len(text) < 19):
                raise forms.ValidationError(self.error_messages["invalid"], code="invalid")
            if int(text) not in ids:
                ids.append(int(text))
        if len(ids) > BULK_LIMIT:
            raise forms.ValidationError(
                self.error_messages["too_many"], code="too_many", params={"limit": BULK_LIMIT}
            )
        return ids


class ReplyForm(forms.Form):
    """The text is validated by ``services.send_message`` (blank, length, control
    characters), with the same messages as everywhere else."""

    text = forms.CharField(strip=False, required=False, widget=forms.Textarea)
    client_id = forms.UUIDField()


class AssignForm(forms.Form):
    """``assignee``: a staff user's id, ``me``, or empty to unassign."""

    assignee = forms.CharField(required=False, max_length=20)

    def __init__(self, *args: Any, actor: Any, **kwargs: Any) -> None:
        self.actor = actor
        super().__init__(*args, **kwargs)

    def clean_assignee(self) -> Any:
        value = self.cleaned_data["assignee"]
        if value in ("", "none"):
            return None
        if value == "me":
            return self.actor
        if not (value.isascii() and value.isdigit() and len(value) < 19):
            raise forms.ValidationError(_("Choose a staff member."))
        user = names.active_users().filter(pk=int(value)).first()
        if user is None or not roles.is_staff(user):
            raise forms.ValidationError(_("Conversations can only be assigned to staff."))
        return user


class StatusForm(forms.Form):
    status = forms.ChoiceField(choices=[("open", _("Open")), ("closed", _("Closed"))])


class BulkForm(AssignForm):
    """Several conversations at once: mark them read, or assign them."""

    ACTIONS = [("read", _("Mark read")), ("assign", _("Assign"))]

    action = forms.ChoiceField(choices=ACTIONS)
    ids = IdListField()


class _Switch(forms.ChoiceField):
    """``true`` / ``false``; absent is ``None`` (left as it is). Anything else is an error."""

    def __init__(self) -> None:
        super().__init__(choices=[("true", "true"), ("false", "false")], required=False)

    def clean(self, value: Any) -> bool | None:
        value = super().clean(value)
        return None if value == "" else value == "true"


class AlertPreferencesForm(forms.Form):
    """The inbox's alert toggles: sound and desktop notifications, one or both."""

    sound = _Switch()
    desktop = _Switch()

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if not self.errors and all(cleaned.get(name) is None for name in self.fields):
            raise forms.ValidationError(_("Send sound or desktop: true or false."))
        return cleaned
