from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from . import api, views

admin.site.site_header = "Foreign Host back office"

urlpatterns = [
    path("", views.home, name="home"),
    path("account/", views.account, name="account"),
    path("account/preferences/", views.save_preferences, name="save-preferences"),
    path("login/", auth_views.LoginView.as_view(template_name="host/login.html"), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("api/v1/me/", api.MeView.as_view(), name="me"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/chat/", include("django_support_chat.api.urls")),  # support-chat: step 3
    # support-chat: step 3 (the staff inbox inside the back office, before the admin)
    path("backoffice/support/", include("django_support_chat.inbox.urls")),
    # support-chat: step 3 (the unsubscribe page the chat's emails link to)
    path("support-mail/", include("django_support_chat.mail.urls")),
    # The chat's health checks for the load balancer (docs/operations.md; not a README step).
    path("status/chat/", include("django_support_chat.ops.urls")),
    path("backoffice/", admin.site.urls),
]
