"""An incremental Server-Sent Events parser: bytes in, events out, no I/O.

It follows the WHATWG event-stream rules (HTML Living Standard, "Parsing an event
stream"): one optional UTF-8 BOM at the start is dropped; lines end with CRLF, LF or a
lone CR; a blank line dispatches the pending event; ``:`` starts a comment (keep-alives
such as ``: ping``); ``field: value`` drops one space after the colon, a line without a
colon is a field with an empty value; ``data`` lines are joined with ``\\n``; an event
with no ``data`` line is not dispatched; ``id`` persists across events until changed
(a value containing NUL is ignored); ``retry`` takes only ASCII digits; unknown fields
are ignored.

Reads may split the stream anywhere (inside a UTF-8 character, between ``\\r`` and
``\\n``): only complete lines are decoded, and line terminators are ASCII bytes that
never occur inside a multi-byte character, so decoding line by line is exact. Invalid
UTF-8 becomes U+FFFD, as the standard's decoder does.

End of stream, where we part from the standard on purpose: the standard discards an
event that was not closed by a blank line, but an OpenAI-compatible server that drops
the connection right after ``data: {...}\\n`` has still delivered that JSON whole, so
``finish()`` dispatches such a pending event. A last line with no terminator at all is
discarded (its size is kept in ``discarded_bytes``): it may be cut mid-value, and passing
it on would turn a truncated stream into a misleading "invalid JSON" failure, or worse,
into a shorter value that happens to parse.

Work is linear in the input: each byte is searched for line ends once (the unterminated
tail of the buffer is remembered as already searched), a long line is copied once when
it completes, and consumed bytes are dropped from the front of a ``bytearray``.
Memory is bounded by ``max_event_bytes``.
"""

from __future__ import annotations

import msgspec

from writ_async.errors import MalformedResponse

__all__ = ["DEFAULT_MAX_EVENT_BYTES", "Event", "SSEParser"]

DEFAULT_MAX_EVENT_BYTES = 16 * 1024 * 1024

_BOM = b"\xef\xbb\xbf"
_CR = 0x0D
_LF = 0x0A
_COLON = 0x3A
_SPACE = 0x20


class Event(msgspec.Struct, frozen=True):
    """One dispatched event: ``data`` lines joined with ``\\n``; ``id`` is the last
    event id seen on the stream so far (``None`` until an ``id`` field arrives)."""

    data: str
    event: str = "message"
    id: str | None = None


class SSEParser:
    """Feed it the body's bytes as they arrive; it returns the events each read completes.

    ``max_event_bytes`` bounds what one event may hold (its ``data`` values plus any
    unterminated line): beyond it ``feed`` raises ``MalformedResponse("event_too_large")``
    instead of buffering without end. After an error the parser must not be fed again.
    """

    def __init__(self, *, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
                 endpoint: str = "") -> None:
        if max_event_bytes <= 0:
            raise ValueError(f"max_event_bytes must be positive, not {max_event_bytes}")
        self.max_event_bytes = max_event_bytes
        self.endpoint = endpoint
        self.last_event_id: str | None = None
        self.retry: int | None = None  # milliseconds, as the last valid ``retry`` field said
        self.discarded_bytes = 0  # an unterminated last line dropped by finish()
        self.events = 0
        self._buf = bytearray()
        # The buffer holds one unterminated line; its first _scanned bytes hold no line end.
        self._scanned = 0
        # The previous read ended with a CR: an LF opening the next read belongs to it.
        self._after_cr = False
        self._bom_checked = False
        self._data: list[str] = []
        self._data_bytes = 0
        self._event_type = ""
        self._finished = False

    def __repr__(self) -> str:
        return (f"<SSEParser events={self.events} buffered={len(self._buf)}"
                f" pending_data={self._data_bytes} finished={self._finished}>")

    def feed(self, data: bytes | bytearray | memoryview) -> list[Event]:
        """Add the next bytes of the stream; return the events they complete, in order."""
        if self._finished:
            raise RuntimeError("SSEParser.feed() after finish()")
        buf = self._buf
        buf += data
        if not self._bom_checked:
            if len(buf) < len(_BOM) and _BOM.startswith(buf):
                return []  # maybe a BOM split across reads: wait for its end
            if buf.startswith(_BOM):
                del buf[: len(_BOM)]
            self._bom_checked = True
        events: list[Event] = []
        n = len(buf)
        start = 0  # where the current line begins
        if self._after_cr and n:
            self._after_cr = False
            if buf[0] == _LF:
                start = 1
        pos = max(self._scanned, start)  # search for line ends from here
        # Next CR and LF at or after pos, n meaning "none in the buffer". Each is searched
        # for again only once pos has passed it, so no byte is searched twice.
        cr = lf = -1
        while True:
            if cr < pos:
                cr = buf.find(b"\r", pos)
                if cr < 0:
                    cr = n
            if lf < pos:
                lf = buf.find(b"\n", pos)
                if lf < 0:
                    lf = n
            end = min(cr, lf)
            if end == n:
                break
            if end == cr:
                if end + 1 == n:
                    self._after_cr = True  # the LF of a CRLF may open the next read
                    pos = end + 1
                else:
                    pos = end + 2 if buf[end + 1] == _LF else end + 1
            else:
                pos = end + 1
            self._line(buf, start, end, events)
            start = pos
        if start:
            del buf[:start]
        self._scanned = len(buf)
        self._check_size(len(buf))
        self.events += len(events)
        return events

    def finish(self) -> list[Event]:
        """The stream ended: return the event still pending from complete lines, if any.

        An unterminated last line is discarded (see the module docstring)."""
        if self._finished:
            return []
        self._finished = True
        self.discarded_bytes = len(self._buf)
        self._buf = bytearray()
        events: list[Event] = []
        self._dispatch(events)
        self.events += len(events)
        return events

    # -- lines -----------------------------------------------------------------------------

    def _line(self, buf: bytearray, start: int, end: int, events: list[Event]) -> None:
        if start == end:
            self._dispatch(events)
            return
        if buf[start] == _COLON:
            return  # a comment: keep-alives and the like
        colon = buf.find(b":", start, end)
        if colon < 0:
            field = bytes(buf[start:end])
            vstart = end
        else:
            field = bytes(buf[start:colon])
            vstart = colon + 1
            if vstart < end and buf[vstart] == _SPACE:
                vstart += 1
        if field == b"data":
            # Count the bytes this event holds before copying them, so one line cannot
            # overshoot the bound by much more than the read that completed it.
            self._data_bytes += end - vstart + 1
            self._check_size(0)
            self._data.append(buf[vstart:end].decode("utf-8", "replace"))
        elif field == b"event":
            self._event_type = buf[vstart:end].decode("utf-8", "replace")
        elif field == b"id":
            value = buf[vstart:end]
            if 0 not in value:
                self.last_event_id = value.decode("utf-8", "replace")
        elif field == b"retry":
            value = buf[vstart:end]
            if value and value.isdigit():
                self.retry = int(value)
        # any other field is ignored, as the standard says

    def _dispatch(self, events: list[Event]) -> None:
        if self._data:
            events.append(Event(data="\n".join(self._data),
                                event=self._event_type or "message",
                                id=self.last_event_id))
        self._data = []
        self._data_bytes = 0
        self._event_type = ""

    def _check_size(self, unterminated: int) -> None:
        size = self._data_bytes + unterminated
        if size > self.max_event_bytes:
            self._finished = True  # the buffer is mid-line now: refuse further reads
            raise MalformedResponse(
                "event_too_large",
                f"a server-sent event exceeds {self.max_event_bytes} bytes ({size} so far)",
                endpoint=self.endpoint,
            )
