"""Turning results into tables, conclusions and the self-contained HTML report."""

from .build import build_report
from .conclusions import conclusions, model_pair

__all__ = ["build_report", "conclusions", "model_pair"]
