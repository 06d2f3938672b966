"""How the scripted agent words retail items: an item's yes/no options say what they mean,
never a bare "yes" or "no" (issue 13: agent text a person would write)."""

from __future__ import annotations

import re

from domains import get_domain
from domains.retail.phrases import _options
from writ_async.conversation.messages import AssistantMessage
from writ_async.conversation.records import derive_seed
from writ_async.participants.scripted.inprocess import run_scripted_episode
from writ_async.synthesis.driver import generate_tasks


def test_yes_no_options_are_said_as_what_they_mean() -> None:
    assert _options({"color": "black", "visor": "yes"}) == "black, with visor"
    assert _options({"size": "M", "visor": "no"}) == "M, no visor"
    assert _options({"waterproof": "yes", "dimmable": "no"}) == "waterproof, not dimmable"
    assert _options({"polarized": "no", "noise cancelling": "no"}) == (
        "not polarized, no noise cancelling")
    assert _options(None) == ""


def test_no_item_is_described_with_a_bare_yes_or_no() -> None:
    domain = get_domain("retail")
    base = domain.generate_db(seed=0)
    bare = re.compile(r"\((?:[^()]*, )?(?:yes|no)(?:, [^()]*)?\)|"
                      r"\b(?:yes|no) (?:one|version)\b")
    described = 0
    for task in generate_tasks(domain, base, 40, seed=0):
        episode, _, _ = run_scripted_episode(domain, base, task, derive_seed(0, task.id, 0))
        for m in episode.messages:
            if isinstance(m, AssistantMessage) and m.content:
                assert not bare.search(m.content), m.content
                described += "(" in m.content
    assert described
