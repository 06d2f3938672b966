"""A cancel scope: a block of code that something else (a stop request, a signal, the end
of a drain) may cancel, with every task that the block's task groups started.

asyncio has task groups but no cancel scope by that name; ``asyncio.timeout(None)`` is
one (a deadline that ``reschedule`` may move to now). ``CancelScope.cancel`` does that:
the task running the block is cancelled, a task group in the block cancels its children
and waits for them, and the scope, on the way out, absorbs the cancellation it caused
and only that one (a cancellation from elsewhere, of the whole task, goes on).

(anyio's ``CancelScope`` does the same, but the engine is plain asyncio throughout, and
anyio's primitives measured slower here, see llm/limits.py: anyio is not a
dependency.)
"""

from __future__ import annotations

import asyncio
import math
from types import TracebackType


class CancelScope:
    """``async with CancelScope() as scope:``; ``scope.cancel()`` from anywhere on the
    loop (a callback, another task), before, during or after the block. After the block,
    ``cancelled_caught`` says whether the cancellation cut it short."""

    __slots__ = ("_timeout", "cancel_called", "cancelled_caught")

    def __init__(self) -> None:
        self._timeout: asyncio.Timeout | None = None
        self.cancel_called = False
        self.cancelled_caught = False

    def cancel(self) -> None:
        if self.cancel_called:
            return
        self.cancel_called = True
        if self._timeout is not None:
            self._timeout.reschedule(-math.inf)  # due now: the next loop turn cancels

    async def __aenter__(self) -> CancelScope:
        if self._timeout is not None:
            raise RuntimeError("a CancelScope is entered once at a time")
        timeout = asyncio.timeout(None)
        await timeout.__aenter__()
        self._timeout = timeout
        if self.cancel_called:  # cancelled before it was entered: the block does not run
            timeout.reschedule(-math.inf)
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> bool:
        timeout, self._timeout = self._timeout, None
        assert timeout is not None
        try:
            await timeout.__aexit__(exc_type, exc, tb)
        except TimeoutError:
            # The timeout turns the cancellation it made into TimeoutError, and only when
            # no other cancellation of the task is pending; its deadline is never set but
            # by ``cancel``, so this is ours: the block was cancelled, and that is all.
            self.cancelled_caught = True
            return True
        return False
