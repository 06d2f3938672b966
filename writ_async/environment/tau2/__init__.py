"""tau2-bench-exact behaviour: canonical text, calc, pyops, validation."""
