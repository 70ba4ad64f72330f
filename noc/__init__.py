"""noc: a terminal dashboard for NOC operators running multi-region email infrastructure."""

__version__ = "0.1.0"
