"""Suite-wide set-up shared by tests/ and plugins/.

Where user namespaces are unavailable (a container with a strict seccomp profile), ``code_exec``
refuses to run generated code unless ``SFTKIT_EXEC_SANDBOX=process``; the suite then accepts the
process-level mode so the evaluators are still tested, and the tests of the OS sandbox itself
skip, naming the reason (tests/test_codeexec.py).
"""

import os


def pytest_configure(config):
    from sftkit.evaluation import sandbox

    box, _why = sandbox.availability()
    if box is None:
        os.environ.setdefault("SFTKIT_EXEC_SANDBOX", "process")
