"""writ_async: verified multi-turn tool-use trajectory synthesis (WRIT) on one machine."""

__version__ = "0.1.0"
