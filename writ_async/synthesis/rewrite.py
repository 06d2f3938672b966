"""Optional rewrite of each task's user instructions through a model role.

Templates give correct but recognisable wording; a model can make it more varied and
natural. A rewrite is only kept if every fact the user needs survives it: each
identifier, number, date, email and quoted value of the original must appear verbatim in
the rewritten text. Otherwise the template wording stays, and the report says why.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass

import msgspec

from writ_async.conversation.task import Instructions, Task
from writ_async.errors import ModelCallError
from writ_async.llm.pool import ModelPool
from writ_async.llm.protocol import ChatRequest, Message

REWRITE_INSTRUCTIONS = """\
Rewrite the following instructions for a customer who is about to contact customer
service, so that they read naturally and differently from a template. Keep the meaning
exactly. Keep every identifier, number, date, amount, email address, name and option
exactly as written. Answer with the rewritten text only."""

# Facts: tokens with a digit (ids, dates, amounts), emails, and capitalised names.
_FACT = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+|#?\w*\d[\w:./-]*|\b[A-Z][a-z]+(?: [A-Z][a-z]+)+")


def facts(text: str) -> list[str]:
    """The strings a rewrite must keep verbatim, in order of appearance, without repeats."""
    seen: dict[str, None] = {}
    for match in _FACT.finditer(text):
        seen.setdefault(match.group(0).rstrip(".,"), None)
    return list(seen)


def missing_facts(original: str, rewritten: str) -> list[str]:
    return [f for f in facts(original) if f not in rewritten]


@dataclass(frozen=True, slots=True)
class RewriteReport:
    tasks: int
    rewritten: int
    kept_original: dict[str, str]  # task id -> why the template wording was kept


async def rewrite_tasks(tasks: Sequence[Task], pool: ModelPool, role: str, *,
                        seed: int, concurrency: int = 64) -> tuple[list[Task], RewriteReport]:
    """Each task with its ``reason_for_call`` rewritten where the rewrite keeps all facts."""
    limit = asyncio.Semaphore(concurrency)
    reasons: dict[str, str] = {}

    async def one(task: Task) -> Task:
        ins = task.user_scenario.instructions
        if not isinstance(ins, Instructions) or not ins.reason_for_call.strip():
            return task
        request = ChatRequest(model="", seed=seed, temperature=0.7, user=f"rewrite|{task.id}",
                              messages=[Message(role="system", content=REWRITE_INSTRUCTIONS),
                                        Message(role="user", content=ins.reason_for_call)])
        async with limit:
            try:
                result = await pool.complete(role, request)
            except ModelCallError as error:
                reasons[task.id] = f"model call failed: {error}"
                return task
        text = (result.completion.choices[0].message.content or "").strip()
        lost = missing_facts(ins.reason_for_call, text)
        if not text or lost:
            reasons[task.id] = ("empty rewrite" if not text
                                else f"rewrite lost {', '.join(repr(f) for f in lost[:5])}")
            return task
        new_ins = msgspec.structs.replace(ins, reason_for_call=text)
        scenario = msgspec.structs.replace(task.user_scenario, instructions=new_ins)
        return msgspec.structs.replace(task, user_scenario=scenario)

    out = list(await asyncio.gather(*(one(t) for t in tasks)))
    report = RewriteReport(tasks=len(tasks), rewritten=sum(
        1 for a, b in zip(tasks, out, strict=True) if a is not b), kept_original=reasons)
    return out, report
