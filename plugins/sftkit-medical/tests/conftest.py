"""The plugin under test, for sftkit's pytest plugin (sftkit.testing) fixtures."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest


# [docs:conftest]
@pytest.fixture
def sftkit_plugin():
    """sftkit's fixtures (sftkit_host, sftkit_run, ...) load this plugin and the built-ins only."""
    import sftkit_medical.plugin

    return sftkit_medical.plugin
# [/docs:conftest]
