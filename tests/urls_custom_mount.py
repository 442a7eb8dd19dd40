"""A host that mounts the chat its own way (tests/test_custom_mount.py): the staff inbox
under its admin path, before Django admin, and the REST API at a path of its own."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from example import views

urlpatterns = [
    path("", views.home, name="home"),
    path("pricing/", views.pricing, name="pricing"),
    path("account/", views.account, name="account"),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("support-api/", include("django_support_chat.api.urls")),
    path("backoffice/support/", include("django_support_chat.inbox.urls")),
    path("backoffice/", admin.site.urls),
]
