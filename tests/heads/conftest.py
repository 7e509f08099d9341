"""Makes ``pipeline.heads.cv`` importable while ``pipeline/heads.py`` is still a module.

Sub-packages (``pipeline/heads/``) are being introduced on main; until ``pipeline/heads.py``
becomes ``pipeline/heads/__init__.py`` there, the module is given the package folder as its
``__path__`` here. Once it is a package this does nothing (and can go).
"""

from __future__ import annotations

from pathlib import Path

import pipeline.heads

if not hasattr(pipeline.heads, "__path__"):
    pipeline.heads.__path__ = [str(Path(pipeline.heads.__file__).with_suffix(""))]
