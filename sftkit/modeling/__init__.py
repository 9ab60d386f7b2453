"""Model loading, adapters and freezing; import the public API from :mod:`sftkit.models`."""
