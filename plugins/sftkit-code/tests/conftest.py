"""The plugin under test, for sftkit's pytest plugin (sftkit.testing) fixtures."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest


@pytest.fixture
def sftkit_plugin():
    import sftkit_code.plugin

    return sftkit_code.plugin
