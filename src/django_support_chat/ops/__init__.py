"""Operations endpoints: health checks for load balancers and orchestrators.

``urls`` serves ``live`` and ``ready`` (mounted at ``chat/health/`` by
``django_support_chat.urls``); ``health_check`` holds the same checks for hosts that
run django-health-check. See docs/operations.md.
"""
