"""Reports: tables and figures that set finished runs beside the papers (``litlab report``)."""

from litlab.report.cli import main

__all__ = ["main"]
