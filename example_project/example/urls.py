from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from . import views

urlpatterns = [
    path("", views.home, name="home"),
    path("pricing/", views.pricing, name="pricing"),
    path("account/", views.account, name="account"),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("api/chat/", include("django_support_chat.urls")),
    # The staff inbox, inside Django admin's URL space: before admin/ so admin does not 404 it.
    path("admin/chat/", include("django_support_chat.inbox.urls")),
    path("admin/", admin.site.urls),
]
