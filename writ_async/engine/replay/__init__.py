"""Deterministic replay (`writ replay`): verify an episode from its journal, fork it from
any step, re-run a run's failures, and hold a run's journal against its manifest.

``run`` opens a run directory for replay; ``verify`` re-executes recorded episodes and
compares every event; ``fork`` and ``rerun`` go on live from a recorded step, through
``continuation``; ``completeness`` says whether a run is whole.
"""
