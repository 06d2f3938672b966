"""Runs spread over a Ray cluster (``writ simulate --ray ADDRESS``).

``budget`` (the shared rate-limit ledger), ``feeder`` (a worker's side of it) and
``shards`` (splitting a run, running one shard, merging) know nothing about Ray;
``ray_run`` is the only module that imports it, lazily, so the engine never needs Ray.
"""
