"""The staff inbox: server-rendered pages (django-htmx) that hosts mount under their admin.

Mount with ``path("admin/chat/", include("django_support_chat.inbox.urls"))`` placed before
Django admin's own ``admin/`` route. See docs/inbox.md.
"""
