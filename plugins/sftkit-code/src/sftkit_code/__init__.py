"""sftkit-code: an example sftkit plugin for Python code instruction tuning.

Importing this package is light; the plugin's hooks live in :mod:`sftkit_code.plugin`.
"""

__version__ = "0.1.0"
