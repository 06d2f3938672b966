"""Scripted participants: the embedded default that runs the pipeline with no model.

``agent`` carries out a task's gold plan as a conversation (``reading``: what it reads
from the conversation; ``mistakes``: the mistakes it makes on purpose); ``user`` tells
the scenario and answers; ``markers`` are the sentences both share; ``inprocess`` runs a
whole episode with both.
"""
