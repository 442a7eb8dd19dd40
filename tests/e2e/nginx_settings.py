"""The example project with the published production settings (deploy/settings_production.py)
on top, as a site would apply them: for tests/e2e/test_nginx_topology.py."""

from example.settings import *  # noqa: F403

from deploy.settings_production import *  # noqa: F403
