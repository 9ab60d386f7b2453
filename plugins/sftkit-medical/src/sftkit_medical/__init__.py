"""sftkit-medical: an example sftkit plugin for medical domain adaptation.

Importing this package is light; the plugin's hooks live in :mod:`sftkit_medical.plugin`.
"""

__version__ = "0.1.0"
