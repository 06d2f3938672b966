"""Grading one episode (tau2-bench's reward), the judge, results.json."""
