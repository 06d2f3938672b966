"""Load-testing model endpoints with realistic multi-turn agent traffic (``writ loadtest``).

``traffic`` (what conversations send), ``recorded`` (a simulate run's requests, sent
again), ``run`` (scheduling, measuring, stopping), ``client`` (one timed attempt, and
the gate open-loop sends wait at), ``http`` (the lean HTTP/1.1 client under it),
``events`` (server-sent events, fast path), ``metrics`` and ``histogram`` (what is
measured, per request and per conversation), ``report`` (report.json, the JSONL files
and the offline HTML), ``sweep`` (the knee), ``cli`` (the command), ``testing`` (a mock
server with exact per-request server timings).
"""
