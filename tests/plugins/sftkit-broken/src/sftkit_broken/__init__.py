"""Test fixture: a plugin distribution whose entry points fail on import, in a hook, or in a factory."""
