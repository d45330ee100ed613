"""The test suite on every other CPython from 3.11 to 3.13 found on this machine.

``.ci/run`` runs the README's test command on the default ``python3``, with
every engine installed, then ``nox``, which runs the same tests on the others;
a Python that is not installed is skipped. The others get no engines (Ray,
dask-jobqueue, MPI): their glue is the same Python on every version, it is
tested once, and installing and starting them would take CI past its budget.
"""

from __future__ import annotations

import sys

import nox

nox.options.error_on_missing_interpreters = False  # CI=true would make it an error
nox.options.reuse_existing_virtualenvs = False

THIS_PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"
OTHER_PYTHONS = [v for v in ("3.11", "3.12", "3.13") if v != THIS_PYTHON]


@nox.session(python=OTHER_PYTHONS)
def tests(session: nox.Session) -> None:
    """Install the package with what its tests need and run pytest."""
    session.install("-e", ".[test,notebook]")
    session.run("python", "-m", "pytest", *session.posargs)
