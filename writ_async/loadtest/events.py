"""Server-sent events on the load tester's hot path: the common shape fast, the rest exact.

OpenAI-compatible servers stream events of one ``data: ...`` line each, LF-terminated
(``data: {...}\\n\\n``). ``FastSSE`` splits such a stream with one C-level
``bytes.split`` per read instead of walking it line by line, which is most of what
parsing costs at thousands of responses per second. At the first thing outside that
shape (a CR, a BOM, a comment, an ``event:``/``id:``/``retry:`` field, multi-line data,
``data:`` without its space, an empty event) it hands the stream, from the start of
that event, to the full WHATWG parser (``models.sse.SSEParser``) and is only a
pass-through from then on, so the events and the end-of-stream rules are exactly the
parser's.
"""

from __future__ import annotations

from writ_async.llm.sse import DEFAULT_MAX_EVENT_BYTES, Event, SSEParser

_BOM = b"\xef\xbb\xbf"


class FastSSE:
    """``SSEParser``'s ``feed``/``finish`` with a fast path (see the module docstring)."""

    __slots__ = ("_parser", "_pending", "_started", "endpoint", "max_event_bytes")

    def __init__(self, *, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
                 endpoint: str = "") -> None:
        self.max_event_bytes, self.endpoint = max_event_bytes, endpoint
        self._parser: SSEParser | None = None
        self._pending = b""  # an event not yet complete
        self._started = False  # past the place a BOM could be

    def __repr__(self) -> str:
        mode = "full parser" if self._parser is not None else "fast"
        return f"<FastSSE {mode} pending={len(self._pending)}>"

    @property
    def fast(self) -> bool:
        """Whether the stream has kept to the common shape so far."""
        return self._parser is None

    def feed(self, data: bytes) -> list[Event]:
        raw, events = self.feed_raw(data)
        if not raw:
            return events
        return [Event(d.decode("utf-8", "replace")) for d in raw] + events

    def feed_raw(self, data: bytes) -> tuple[list[bytes], list[Event]]:
        """``feed``, with the fast path's events as their undecoded ``data`` bytes (all
        of type ``message``), then any events of the full parser: the same events, in
        order, for a consumer that can take many at once."""
        if self._parser is not None:
            return [], self._parser.feed(data)
        buf = self._pending + data if self._pending else data
        if not self._started:
            if len(buf) < len(_BOM) and _BOM.startswith(buf):
                self._pending = buf  # maybe a BOM split across reads
                return [], []
            self._started = True
            if buf.startswith(_BOM):
                return [], self._hand_over(buf, at_start=True)
        if b"\r" in buf:
            return [], self._hand_over(buf)
        parts = buf.split(b"\n\n")
        tail = parts.pop()
        raw: list[bytes] = []
        for i, block in enumerate(parts):
            if block.startswith(b"data: ") and b"\n" not in block:
                raw.append(block[6:])
            else:
                parts.append(tail)
                return raw, self._hand_over(b"\n\n".join(parts[i:]))
        if len(tail) > self.max_event_bytes:
            return raw, self._hand_over(tail)  # the parser raises event_too_large
        self._pending = tail
        return raw, []

    def finish(self) -> list[Event]:
        """The stream ended: what the full parser dispatches at the end (its rules)."""
        if self._parser is None:
            if not self._pending:
                return []
            events = self._hand_over(self._pending)
            assert self._parser is not None
            return events + self._parser.finish()
        return self._parser.finish()

    def _hand_over(self, rest: bytes, *, at_start: bool = False) -> list[Event]:
        self._pending = b""
        self._parser = parser = SSEParser(max_event_bytes=self.max_event_bytes,
                                          endpoint=self.endpoint)
        if not at_start:
            # Past the stream's start a BOM is not one to drop: a blank line first (it
            # dispatches nothing, as no data is pending) puts the parser past that check.
            parser.feed(b"\n")
        return parser.feed(rest)
