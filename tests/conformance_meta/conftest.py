"""Meta-tests of the conformance suite need ``pytester``.

``pytest_plugins`` is not allowed in a conftest below the rootdir, so the plugin is registered from
``pytest_configure`` (a historic hook: it also runs for a conftest loaded during collection).
"""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    if not config.pluginmanager.has_plugin("pytester"):
        config.pluginmanager.import_plugin("pytester")
