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
    # django-support-chat: the API at api/chat/ and the staff inbox at admin/chat/.
    # Before admin/, so Django admin does not answer admin/chat/ with a 404.
    path("", include("django_support_chat.urls")),
    path("admin/", admin.site.urls),
]
