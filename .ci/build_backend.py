"""The build backend: setuptools', without its information-only notices.

setuptools reports "Editable installation" facts (where the strict link tree is, which import
mechanism it chose for the package-dir mapping) as `InformationOnly` warnings, which pip prints
as `BuildBackendWarning` on every `pip install -e .`; they are not warnings about the project,
so they are filtered. Every real setuptools warning still shows.
"""

import warnings

from setuptools.build_meta import *  # noqa: F403 - the PEP 517 hooks, unchanged
from setuptools.warnings import InformationOnly

warnings.filterwarnings("ignore", category=InformationOnly)
