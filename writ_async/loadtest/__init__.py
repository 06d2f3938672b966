"""Load-testing model endpoints with realistic multi-turn agent traffic (``writ loadtest``).

``traffic`` (what conversations send), ``run`` (scheduling, measuring, stopping),
``client`` (one timed HTTP attempt), ``metrics`` and ``histogram`` (what is measured),
``report`` (report.json and the offline HTML), ``sweep`` (the knee), ``cli`` (the
command), ``testing`` (a mock server with exact per-request server timings).
"""
