"""Serve the plotly.min.js that ships inside the installed plotly package as vendor/plotly.min.js.

Its version always matches plotly.py (which encodes arrays as typed arrays), and
only this one file is published, not the 10 MB of package data beside it.
"""

from pathlib import Path

import plotly
from django.contrib.staticfiles.finders import BaseFinder
from django.core.files.storage import FileSystemStorage

ROOT = Path(plotly.__file__).parent / "package_data"
PUBLIC_PATH = "vendor/plotly.min.js"


class PlotlyJSFinder(BaseFinder):
    def __init__(self, *args, **kwargs):
        self.storage = FileSystemStorage(location=str(ROOT))
        self.storage.prefix = "vendor"

    def check(self, **kwargs):
        return []

    def find(self, path, find_all=False, **kwargs):
        hit = str(ROOT / "plotly.min.js") if path == PUBLIC_PATH else None
        if find_all:
            return [hit] if hit else []
        return hit

    def list(self, ignore_patterns):
        yield "plotly.min.js", self.storage
