"""An entry point whose import fails (a missing dependency, say)."""

raise ImportError("sftkit_broken needs libbroken, which is not installed")
