"""Shared test set-up: never reach the Hugging Face hub; fresh plugin host per test."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest


@pytest.fixture(autouse=True)
def _fresh_host():
    from sftkit.plugins import reset_host

    reset_host()
    yield
    reset_host()


@pytest.fixture(scope="session")
def tiny_tokenizer():
    from sftkit.tiny import tiny_tokenizer as make

    return make()
