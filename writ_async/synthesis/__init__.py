"""WRIT synthesis: tasks from a domain database (stage 1), later user behaviours,
simulation, filtering and export."""
