"""User behaviours: each changes how the user tells a task, never its outcome. With the
scripted agent every behaviour (and composition) ends in the gold state with every
required string said; the user's words differ between behaviours and each behaviour
does what its name says; everything is a function of the seed; sampling follows the
configured weights; the same catalogue yields the LLM user's instructions."""

from __future__ import annotations

import dataclasses
import random
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations

import msgspec
import pytest
from conftest import require, tau2_dir

from domains import get_domain
from writ_async.conversation.episode import Episode
from writ_async.conversation.messages import (
    AssistantMessage,
    Message,
    ToolCall,
    ToolMessage,
    UserMessage,
)
from writ_async.conversation.records import derive_seed
from writ_async.conversation.task import Task, UserScenario, load_tasks
from writ_async.environment.domain import Domain
from writ_async.environment.overlay import BaseDB
from writ_async.environment.tools import ToolKind
from writ_async.grading import gold as gold_end
from writ_async.grading import grade as grading
from writ_async.mock.scripted_policy import agent_messages, user_messages
from writ_async.participants.behaviours.catalogue import (
    BEHAVIOURS,
    CATALOGUE,
    NAMES,
    canonical,
    compatible,
)
from writ_async.participants.behaviours.content import (
    forbidden_request,
    id_mistake,
    instruction_text,
    is_forbidden_request,
    mentions,
    preference,
    replace_value,
    string_leaves,
    user_prompt_block,
    with_behaviours,
)
from writ_async.participants.behaviours.phrasing import fact_units, first_person, terse
from writ_async.participants.behaviours.scenarios import (
    BehaviourMix,
    Scenario,
    expand_scenarios,
    parse_scenario_id,
    sample_behaviours,
    scenario_id,
)
from writ_async.participants.behaviours.user_phrases import FILLERS, HURRIES, PHRASINGS
from writ_async.participants.phrasebank import REASK_LEADS, REFUSAL_LEADS
from writ_async.participants.prompts import (
    USER_GUIDELINES,
    agent_view,
    user_system_prompt,
    user_view,
)
from writ_async.participants.scripted.agent import ScriptedAgent
from writ_async.participants.scripted.inprocess import run_scripted_episode
from writ_async.participants.scripted.reading import HEARD_SUFFIX
from writ_async.participants.scripted.user import DEFAULT_MAX_USER_TURNS, ScriptedUser

DOMAINS = ("airline", "retail")
RUN_SEED = 500
ALL_WEIGHTS = BehaviourMix(weights=dict.fromkeys(NAMES, 1.0), combine=0.8, max_size=4)
# The largest compositions the catalogue allows, one per exclusive choice.
WIDEST = (
    ("one_fact_when_asked", "vague_then_narrows", "out_of_order", "impatient",
     "correctable_id_mistake", "forbidden_first", "changes_preference"),
    ("cooperative", "out_of_order", "verbose", "correctable_id_mistake", "forbidden_first",
     "changes_preference"),
)


@dataclass(frozen=True)
class World:
    name: str
    domain: Domain
    base: BaseDB
    tasks: list[Task]  # the tau2-bench tasks with gold actions

    def seed(self, task: Task, behaviours: Sequence[str] = (), trial: int = 0) -> int:
        return derive_seed(RUN_SEED, scenario_id(task.id, behaviours), trial)


@pytest.fixture(scope="module", params=DOMAINS)
def world(request: pytest.FixtureRequest) -> World:
    folder = require(tau2_dir() / request.param, f"tau2-bench {request.param} data")
    domain = get_domain(request.param)
    base = domain.load_db(require(folder / "db.json", "tau2-bench db.json"))
    tasks = [t for t in load_tasks(require(folder / "tasks.json", "tau2-bench tasks.json"))
             if t.gold_actions]
    assert tasks, f"no {request.param} task has gold actions"
    return World(request.param, domain, base, tasks)


def run(world: World, task: Task, behaviours: Sequence[str],
        seed: int | None = None) -> tuple[Episode, str]:
    seed = world.seed(task, behaviours) if seed is None else seed
    episode, final, agent = run_scripted_episode(world.domain, world.base, task, seed,
                                                 behaviours=behaviours)
    assert agent.mistake is None
    return episode, final


def said_by_user(messages: Sequence[Message]) -> list[str]:
    return [m.content for m in messages if isinstance(m, UserMessage)]


def calls(messages: Sequence[Message]) -> list[tuple[int, ToolCall]]:
    return [(i, c) for i, m in enumerate(messages)
            if isinstance(m, AssistantMessage) and m.tool_calls for c in m.tool_calls]


def heard_calls(messages: Sequence[Message]) -> list[tuple[int, ToolCall]]:
    return [(i, c) for i, c in calls(messages) if c.id.endswith(HEARD_SUFFIX)]


def assert_gold_outcome(world: World, task: Task, episode: Episode, final: str,
                        where: str) -> None:
    """The gold end state, every communicate string, reward 1 and the evidence and
    confirmation checks; the plan's own calls are exactly the gold actions, in order."""
    gold = gold_end.replay_gold(world.domain, world.base, task)
    assert episode.termination == "user_stop", where
    assert final == gold.db_hash, where
    info = grading.grade(task, episode.messages, episode.termination.value, final, gold,
                         world.domain.toolbox)
    assert info.reward == 1.0, (where, info.note, info.communicate_checks)
    assert all(c.passed for c in info.communicate_checks), where
    assert info.evidence_ok, (where, [c for c in info.evidence_checks if not c.passed])
    planned = [(c.name, c.arguments) for _, c in calls(episode.messages)
               if not c.id.endswith(HEARD_SUFFIX)]
    assert planned == [(a.name, a.arguments) for a in task.gold_actions], where


# -- the catalogue -------------------------------------------------------------------------


def test_the_catalogue_names_every_behaviour_of_the_issue() -> None:
    assert NAMES == ("cooperative", "one_fact_when_asked", "vague_then_narrows",
                     "out_of_order", "impatient", "verbose", "correctable_id_mistake",
                     "forbidden_first", "changes_preference")
    for behaviour in CATALOGUE:
        assert behaviour.summary and behaviour.prompt and behaviour.composable
    # Exclusions are symmetric and name known behaviours.
    for a, b in combinations(NAMES, 2):
        assert compatible(a, b) == compatible(b, a)
        assert (b in BEHAVIOURS[a].excludes) == (a in BEHAVIOURS[b].excludes)
    assert not compatible("cooperative", "one_fact_when_asked")
    assert not compatible("cooperative", "vague_then_narrows")
    assert not compatible("impatient", "verbose")
    assert compatible("one_fact_when_asked", "vague_then_narrows")
    assert not compatible("verbose", "verbose")


def test_canonical_orders_and_rejects_what_cannot_be() -> None:
    assert canonical(["verbose", "out_of_order", "verbose"]) == ("out_of_order", "verbose")
    assert canonical([]) == ()
    with pytest.raises(ValueError, match="unknown behaviour 'chatty'"):
        canonical(["chatty"])
    with pytest.raises(ValueError, match="cannot be combined"):
        canonical(["verbose", "impatient"])
    with pytest.raises(ValueError, match="cannot be combined"):
        ScriptedUser(Task(id="t", user_scenario=UserScenario(instructions="Help me.")), 0,
                     behaviours=("cooperative", "one_fact_when_asked"), domain=None)


def test_scenario_ids_round_trip() -> None:
    assert scenario_id("12", ()) == "12"
    assert scenario_id("12", ("verbose", "cooperative")) == "12@cooperative+verbose"
    assert parse_scenario_id("12@cooperative+verbose") == ("12", ("cooperative", "verbose"))
    assert parse_scenario_id("airline-w-000003") == ("airline-w-000003", ())
    assert parse_scenario_id("a@b") == ("a@b", ())  # not a behaviour suffix: a task id
    assert Scenario("7", ("impatient",)).id == "7@impatient"
    for names in WIDEST:
        sid = scenario_id("retail-w-000001", names)
        assert parse_scenario_id(sid) == ("retail-w-000001", canonical(names))


def test_phrasing_keeps_identifiers_byte_for_byte() -> None:
    assert first_person("Your user id is your_id_1234.") == "My user id is your_id_1234."
    assert first_person("You are Emma Kim. If the agent tells you no, you were told yes.") \
        == "I am Emma Kim. If the agent tells me no, I was told yes."
    assert first_person("Your email is you.there42@example.com") \
        == "My email is you.there42@example.com"
    assert terse("My user id is emma_kim_9957.") == "User id: emma_kim_9957."
    assert terse("I want to cancel reservation EHGLP3.") == "Need to cancel reservation EHGLP3."


# -- sampling ------------------------------------------------------------------------------


def test_sampling_is_a_function_of_the_seed() -> None:
    first = [sample_behaviours(seed, ALL_WEIGHTS) for seed in range(300)]
    again = [sample_behaviours(seed, ALL_WEIGHTS) for seed in range(300)]
    assert first == again
    assert len(set(first)) > 20  # and the seed matters
    for names in first:
        assert names == canonical(names)  # canonical order, compatible
        assert 1 <= len(names) <= 4


def test_sampling_respects_the_weights() -> None:
    mix = BehaviourMix(weights={"cooperative": 3.0, "impatient": 1.0, "verbose": 0.0})
    drawn = Counter(sample_behaviours(seed, mix) for seed in range(4000))
    assert set(drawn) == {("cooperative",), ("impatient",)}  # singletons; never weight 0
    share = drawn[("cooperative",)] / 4000
    assert 0.72 < share < 0.78, share  # 3 : 1
    # Combining: every composition is compatible, within max_size, weight 0 never drawn.
    mix = BehaviourMix(weights={**dict.fromkeys(NAMES, 1.0), "forbidden_first": 0.0},
                       combine=1.0, max_size=3)
    sizes = Counter()
    for seed in range(2000):
        names = sample_behaviours(seed, mix)
        sizes[len(names)] += 1
        assert "forbidden_first" not in names
        assert canonical(names) == names
    assert set(sizes) == {3}
    # With combine in between, sizes spread.
    mix = BehaviourMix(weights=dict.fromkeys(NAMES, 1.0), combine=0.5, max_size=3)
    sizes = Counter(len(sample_behaviours(seed, mix)) for seed in range(4000))
    assert 0.45 < sizes[1] / 4000 < 0.55, sizes
    # Each behaviour's share follows its weight.
    mix = BehaviourMix(weights={n: float(i + 1) for i, n in enumerate(NAMES)})
    drawn = Counter(sample_behaviours(seed, mix)[0] for seed in range(9000))
    total = sum(range(1, len(NAMES) + 1))
    for i, name in enumerate(NAMES):
        expected = (i + 1) / total
        assert abs(drawn[name] / 9000 - expected) < 0.02, (name, drawn[name], expected)


def test_the_mix_is_validated_and_reads_from_configuration() -> None:
    mix = msgspec.convert({"weights": {"cooperative": 1, "impatient": 0.5}, "per_task": 2},
                          type=BehaviourMix)
    assert mix.drawable() == [("cooperative", 1.0), ("impatient", 0.5)]
    with pytest.raises(msgspec.ValidationError, match="unknown behaviour"):
        msgspec.convert({"weights": {"chatty": 1.0}}, type=BehaviourMix)
    with pytest.raises(msgspec.ValidationError, match="at least one must be positive"):
        msgspec.convert({"weights": {"cooperative": 0.0}}, type=BehaviourMix)
    with pytest.raises(msgspec.ValidationError, match=">= 0"):
        msgspec.convert({"weights": {"cooperative": -1.0}}, type=BehaviourMix)
    with pytest.raises(msgspec.ValidationError, match="per task"):
        msgspec.convert({"per_task": 0}, type=BehaviourMix)
    with pytest.raises(msgspec.ValidationError, match="unknown field"):
        msgspec.convert({"weigths": {}}, type=BehaviourMix)


def test_tasks_expand_into_distinct_seeded_scenarios() -> None:
    ids = [str(i) for i in range(50)]
    mix = BehaviourMix(weights=dict.fromkeys(NAMES, 1.0), per_task=3, combine=0.3)
    scenarios = expand_scenarios(ids, mix, run_seed=9)
    assert scenarios == expand_scenarios(ids, mix, run_seed=9)
    assert scenarios != expand_scenarios(ids, mix, run_seed=10)
    assert len(scenarios) == 150
    assert len({s.id for s in scenarios}) == 150
    assert [s.task_id for s in scenarios] == [i for i in ids for _ in range(3)]
    # A task's scenarios do not depend on the other tasks.
    assert expand_scenarios(["7"], mix, run_seed=9) == [s for s in scenarios if s.task_id == "7"]
    # A mix that allows fewer compositions than asked gives what it can.
    only = BehaviourMix(weights={"verbose": 1.0}, per_task=3)
    assert expand_scenarios(["1"], only, run_seed=0) == [Scenario("1", ("verbose",))]


# -- the gold outcome never changes ---------------------------------------------------------


@pytest.mark.parametrize("behaviour", NAMES)
def test_every_behaviour_keeps_the_gold_outcome(world: World, behaviour: str) -> None:
    for task in world.tasks:
        episode, final = run(world, task, (behaviour,))
        assert_gold_outcome(world, task, episode, final, f"{world.name} {task.id} {behaviour}")


def test_compositions_keep_the_gold_outcome(world: World) -> None:
    for i, task in enumerate(world.tasks):
        for names in (*WIDEST, sample_behaviours(i, ALL_WEIGHTS)):
            episode, final = run(world, task, names)
            assert_gold_outcome(world, task, episode, final, f"{world.name} {task.id} {names}")


def test_synthesized_tasks_keep_the_gold_outcome() -> None:
    from writ_async.synthesis.driver import generate_tasks

    for name in DOMAINS:
        domain = get_domain(name)
        base = domain.base(None, 3, 1.0)
        world = World(name, domain, base, generate_tasks(domain, base, 24, 3))
        for i, task in enumerate(world.tasks):
            for names in ((NAMES[i % len(NAMES)],), *WIDEST, sample_behaviours(i, ALL_WEIGHTS)):
                episode, final = run(world, task, names)
                assert_gold_outcome(world, task, episode, final, f"{name} {task.id} {names}")


# -- the user's words change ------------------------------------------------------------------


def test_behaviours_change_what_the_user_says(world: World) -> None:
    for task in world.tasks:
        told = {}
        for names in [(), *((n,) for n in NAMES)]:
            episode, _ = run(world, task, names, seed=world.seed(task))
            told[names] = said_by_user(episode.messages)
        for a, b in combinations(told, 2):
            if (a, b) == ((), ("one_fact_when_asked",)) and (
                    fact_units(task, sentences=True) == fact_units(task)):
                # every fact is one sentence: one fact per question is how the plain
                # user tells them too
                continue
            assert told[a] != told[b], (world.name, task.id, a, b)


def test_cooperative_says_everything_in_the_first_message(world: World) -> None:
    for task in world.tasks:
        episode, _ = run(world, task, ("cooperative",))
        opening = said_by_user(episode.messages)[0]
        reason, known, extra = fact_units(task)
        for unit in [*reason, *known, *extra]:
            assert first_person(unit) in opening, (task.id, unit)
        assert not any(m.content.startswith(REASK_LEADS) for m in episode.messages
                       if isinstance(m, AssistantMessage) and m.content)


def test_one_fact_when_asked_tells_one_fact_per_question(world: World) -> None:
    reasked = 0
    for task in world.tasks:
        episode, _ = run(world, task, ("one_fact_when_asked",))
        reason, known, extra = fact_units(task, sentences=True)
        units = [first_person(u) for u in [*reason, *known, *extra]]
        messages = said_by_user(episode.messages)
        assert messages[0] == units[0]
        for text in messages[1:]:
            assert sum(u in text for u in units) <= 1, (task.id, text)
        reasked += any((m.content or "").startswith(REASK_LEADS)
                       for m in episode.messages if isinstance(m, AssistantMessage))
    # Where the first fact holds nothing the agent needs, the agent asks again, by name.
    assert reasked > len(world.tasks) // 4, (reasked, len(world.tasks))


def test_vague_then_narrows_opens_without_specifics(world: World) -> None:
    for task in world.tasks:
        episode, _ = run(world, task, ("vague_then_narrows",))
        messages = said_by_user(episode.messages)
        assert messages[0] in world.domain.vague_openers
        assert messages[1].startswith(tuple(PHRASINGS["plain"].narrow.texts()))
        for action in task.gold_actions:
            for value in string_leaves(action.arguments):
                assert not (len(value) >= 3 and mentions(messages[0], value))


def test_out_of_order_changes_the_order_of_the_facts(world: World) -> None:
    for task in world.tasks:
        reason, known, extra = fact_units(task)
        units = [first_person(u) for u in [*reason, *known, *extra]]
        if len(units) < 2:
            continue
        episode, _ = run(world, task, ("out_of_order",))
        messages = said_by_user(episode.messages)
        assert not messages[0].startswith(units[0]), task.id
        assert any(u in messages[0] for u in units[1:]), task.id


def test_impatient_is_terse_and_verbose_is_not(world: World) -> None:
    hurries = sorted(HURRIES.texts(), key=len, reverse=True)

    def length(names: tuple[str, ...], task: Task) -> float:
        """Characters per message of what the user tells, without the impatient user's
        hurry asides ("I'm between meetings!"): its telling is what must be terse."""
        episode, _ = run(world, task, names, seed=world.seed(task))
        texts = said_by_user(episode.messages)[:-1]  # not the stop token
        for hurry in hurries:
            texts = [t.replace(hurry, "") for t in texts]
        return sum(len(t.strip()) for t in texts) / len(texts)

    shorter = 0
    for task in world.tasks:
        impatient, plain, verbose = (length(("impatient",), task), length((), task),
                                     length(("verbose",), task))
        assert impatient < verbose, task.id
        assert plain < verbose, task.id
        shorter += impatient < plain
        episode, _ = run(world, task, ("verbose",))
        texts = said_by_user(episode.messages)[:-1]
        fillers = FILLERS.texts()
        # An aside before and after the opening, and at least one in every later message.
        assert texts[0].startswith(tuple(fillers)) and texts[0].endswith(tuple(fillers))
        for text in texts:
            assert text.startswith(tuple(fillers)) or text.endswith(tuple(fillers)), text
    assert shorter >= 0.8 * len(world.tasks), (shorter, len(world.tasks))


def test_a_mistyped_identifier_is_reported_and_corrected(world: World) -> None:
    reported = 0
    for task in world.tasks:
        seed = world.seed(task, ("correctable_id_mistake",))
        mistake = id_mistake(task, seed)
        episode, _ = run(world, task, ("correctable_id_mistake",))
        messages = episode.messages
        users = [(i, m.content) for i, m in enumerate(messages) if isinstance(m, UserMessage)]
        if mistake is None:
            continue
        texts = [content for _, content in users]
        first_typo = next(k for k, t in enumerate(texts) if mentions(t, mistake.typo))
        first_value = next(k for k, t in enumerate(texts) if mentions(t, mistake.value))
        assert first_typo <= first_value, task.id
        heard = heard_calls(messages)
        if not mistake.looked_up:  # nobody looks it up: the user corrects itself at once
            assert heard == [], task.id
            fixes = PHRASINGS["plain"].self_correct.texts(value=mistake.value)
            assert texts[first_typo].endswith(tuple(fixes)), task.id
            continue
        # The agent looked it up as said, the lookup failed, it said so, the user fixed it.
        assert len(heard) == 1, task.id
        i, call = heard[0]
        assert mistake.typo in string_leaves(call.arguments)
        assert first_typo < first_value, task.id
        result = messages[i + 1]
        assert isinstance(result, ToolMessage) and result.error, task.id
        assert mentions(messages[i + 2].content or "", mistake.typo)  # the agent reports it
        assert isinstance(messages[i + 3], UserMessage)
        assert mentions(messages[i + 3].content, mistake.value)
        # No call with the correct value was made before the user corrected it.
        assert not any(mistake.value in string_leaves(c.arguments)
                       for j, c in calls(messages) if j < i), task.id
        reported += 1
    assert reported >= len(world.tasks) // 2, (reported, len(world.tasks))


def test_a_forbidden_request_comes_first_and_is_refused(world: World) -> None:
    for task in world.tasks:
        seed = world.seed(task, ("forbidden_first",))
        episode, _ = run(world, task, ("forbidden_first",))
        messages = episode.messages
        users = [i for i, m in enumerate(messages) if isinstance(m, UserMessage)]
        assert messages[users[0]].content == forbidden_request(world.domain, seed)
        assert messages[users[0]].content in world.domain.forbidden_requests
        refusal = messages[users[0] + 1]
        assert isinstance(refusal, AssistantMessage) and not refusal.tool_calls
        assert (refusal.content or "").startswith(REFUSAL_LEADS)
        assert messages[users[1]].content.startswith(tuple(PHRASINGS["plain"].accept.texts()))
        assert not is_forbidden_request(" ".join(said_by_user(messages)[1:]), world.domain)


def test_a_preference_is_stated_and_then_changed(world: World) -> None:
    for task in world.tasks:
        seed = world.seed(task, ("changes_preference",))
        stated, changed = preference(seed)
        episode, _ = run(world, task, ("changes_preference",))
        messages = said_by_user(episode.messages)
        assert stated in messages[0]
        later = [k for k, text in enumerate(messages) if changed in text]
        assert later == [1], (task.id, messages)


# -- determinism and purity ------------------------------------------------------------------


def test_same_seed_same_conversation(world: World) -> None:
    for i, task in enumerate(world.tasks[:20]):
        names = (*WIDEST, (), ("one_fact_when_asked", "verbose"))[i % 4]
        first, final = run(world, task, names)
        again, final_again = run(world, task, names)
        assert msgspec.json.encode(first.messages) == msgspec.json.encode(again.messages)
        assert final == final_again
    # The seed, not only the task, decides the wording.
    task = world.tasks[0]
    texts = {tuple(said_by_user(run(world, task, ("verbose",), seed=s)[0].messages))
             for s in range(8)}
    assert len(texts) > 1


def test_participants_answer_the_same_from_their_wire_view(world: World) -> None:
    """What the mock server does: rebuild each side's history from a chat request and
    ask a fresh participant; the reply must be the one given in-process."""
    for i, task in enumerate(world.tasks[::5]):
        names = WIDEST[i % 2]
        seed = world.seed(task, names)
        episode, _ = run(world, task, names)
        messages = episode.messages
        for k, message in enumerate(messages):
            if isinstance(message, UserMessage):
                wire = user_view("system", messages[:k])
                user = ScriptedUser(task, seed, behaviours=names, domain=world.domain)
                assert user.reply(user_messages(wire)).content == message.content
            elif isinstance(message, AssistantMessage) and k > 0:
                wire = agent_view("system", messages[:k])
                agent = ScriptedAgent(task, world.domain, seed)
                again = agent.reply(agent_messages(wire))
                assert again.content == message.content, (task.id, k)
                assert again.tool_calls == message.tool_calls, (task.id, k)


def test_heard_lookups_are_reads(world: World) -> None:
    for task in world.tasks:
        episode, _ = run(world, task, WIDEST[0])
        for _, call in heard_calls(episode.messages):
            assert world.domain.toolbox.kind(call.name) is ToolKind.READ


# -- the LLM user simulator ------------------------------------------------------------------


def test_the_catalogue_instructs_an_llm_user(world: World) -> None:
    task = world.tasks[0]
    assert user_prompt_block((), task, 1, domain=world.domain) == ""
    assert with_behaviours(USER_GUIDELINES, (), task, 1, domain=world.domain) == USER_GUIDELINES
    for names in [(n,) for n in NAMES] + list(WIDEST):
        seed = world.seed(task, names)
        block = user_prompt_block(names, task, seed, domain=world.domain)
        assert block.startswith("<behaviour>") and block.endswith("</behaviour>")
        assert "{" not in block and "}" not in block
        assert block.count("\n- ") == len(names)
        guidelines = with_behaviours(USER_GUIDELINES, names, task, seed, domain=world.domain)
        prompt = user_system_prompt(task, guidelines)
        assert prompt.index(USER_GUIDELINES) < prompt.index("<behaviour>") \
            < prompt.index("<scenario>")
        # The same per-episode choices as the scripted user.
        if "forbidden_first" in names:
            assert forbidden_request(world.domain, seed) in block
        if "changes_preference" in names:
            assert all(p in block for p in preference(seed))
        if "correctable_id_mistake" in names:
            mistake = id_mistake(task, seed)
            assert mistake is not None and mistake.typo in block and mistake.value in block


def test_instructions_that_are_plain_text_are_told_too() -> None:
    task = Task(id="x", user_scenario=UserScenario(
        instructions="You want to know your order status. Your order is #W1234567."))
    greeting = AssistantMessage(content="Hi! How can I help you today?")
    user = ScriptedUser(task, 3, behaviours=("impatient",), domain=None)
    first = user.reply([greeting])
    assert first.content.startswith("Need to know my order status.")
    question = AssistantMessage(content="Could you please give me the order number?")
    second = user.reply([greeting, first, question])
    assert second.content.startswith("Order: #W1234567.")


# -- varied turns ----------------------------------------------------------------------------

# Compositions that make the user talk most: one fact per question, wrapped in filler or in
# a hurry, a typo to correct, a forbidden request and a change of mind.
TALKATIVE = (
    (), ("verbose",), ("impatient",), ("cooperative", "verbose"),
    ("one_fact_when_asked", "verbose", "out_of_order"),
    ("one_fact_when_asked", "impatient", "correctable_id_mistake"),
    ("vague_then_narrows", "verbose", "forbidden_first", "changes_preference"), *WIDEST,
)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def fact_wordings(task: Task, seed: int, behaviours: Sequence[str]) -> list[str]:
    """Every wording in which the user may tell one of its facts: as the scenario has it,
    in the first person, terse, with and without its mistyped identifier."""
    units = [u for split in (False, True) for part in fact_units(task, sentences=split)
             for u in part]
    units += instruction_text(task).splitlines()
    ins = task.user_scenario.instructions
    if not isinstance(ins, str):
        units.append(ins.task_instructions)
    mistake = id_mistake(task, seed) if "correctable_id_mistake" in behaviours else None
    if mistake is not None:
        units += [replace_value(u, mistake.value, mistake.typo) for u in units]
    return [w for u in units for w in (u, first_person(u), terse(first_person(u)))]


def stock_sentences(task: Task, seed: int, behaviours: Sequence[str],
                    texts: Sequence[str]) -> list[str]:
    """The sentences of the user's messages that are not one of its facts: its fillers,
    confirmations, acknowledgements, hurries, apologies, repeats."""
    facts = fact_wordings(task, seed, behaviours)
    return [s for text in texts for s in _SENTENCE_END.split(text)
            if s and not any(s in f for f in facts)]


def test_no_stock_sentence_is_said_twice_in_a_conversation(world: World) -> None:
    stock = 0
    for task in world.tasks:
        for names in TALKATIVE:
            seed = world.seed(task, names)
            episode, _ = run(world, task, names)
            said = stock_sentences(task, seed, names, said_by_user(episode.messages))
            twice = [s for s, n in Counter(said).items() if n > 1]
            assert not twice, (world.name, task.id, names, twice)
            stock += len(said)
    assert stock > 10 * len(world.tasks)  # the check did look at many sentences


def bank_lines(**fill: str) -> dict[str, list[str]]:
    """Every stock sentence of the scripted user, by bank."""
    lines = {f"{style}.{f.name}": getattr(phrasing, f.name).texts(**fill)
             for style, phrasing in PHRASINGS.items() for f in dataclasses.fields(phrasing)}
    return {**lines, "fillers": FILLERS.texts(), "hurries": HURRIES.texts()}


def test_the_phrase_banks_are_large_and_safe_to_say() -> None:
    yes = re.compile(r"\byes\b", re.IGNORECASE)
    # Banks a user may draw from on every turn hold more lines than a conversation has
    # turns (fillers: two a turn), so that none ever has to be said twice.
    per_turn = {"confirm": 1, "ack": 1, "exhausted": 1, "all_given": 1}
    for name, lines in bank_lines(value="XY-value").items():
        kind = name.rpartition(".")[2]
        wanted = {"fillers": 2, "hurries": 1}.get(name, per_turn.get(kind, 0))
        assert len(lines) >= wanted * DEFAULT_MAX_USER_TURNS, (name, len(lines))
        assert len(set(lines)) == len(lines), name
        for line in lines:
            # tau2's policies need an explicit yes: every confirmation has one, nothing
            # else does, so that only a confirmation reads as agreement.
            assert bool(yes.search(line)) == (kind == "confirm"), (name, line)
            assert not any(ch.isdigit() for ch in line), (name, line)
            if kind in ("repeat", "narrow"):  # prefixes to a fact
                assert line.endswith(": ") and line[0].isupper(), (name, line)
            else:  # one sentence each
                assert _SENTENCE_END.split(line) == [line], (name, line)
                assert line[0].isupper() and line[-1] in ".!", (name, line)
            if kind in ("correct", "self_correct"):
                assert mentions(line, "XY-value"), (name, line)


def test_no_stock_line_mentions_a_value_a_tool_takes(world: World) -> None:
    # The agent looks for the user's values in all it says: a filler or a confirmation
    # that happened to state one would count as telling it.
    values = {v for task in world.tasks for action in task.gold_actions
              for v in string_leaves(action.arguments) if len(v) >= 2}
    for name, lines in bank_lines(value="XY-value").items():
        for line in lines:
            assert not [v for v in values if mentions(line, v)], (name, line)


def test_a_bank_says_every_core_before_composing_new_lines() -> None:
    said: list[str] = []
    for turn in range(3 * len(FILLERS.cores)):
        line = FILLERS.pick(random.Random(f"7:user:{turn}"), said)
        cores = [c for c in FILLERS.cores if c.lower() in line.lower()]
        assert len(cores) == 1, line
        # Each aside is about something new until every one was said; only then are the
        # cores said again, each in a frame not used with it before.
        before = any(cores[0].lower() in s.lower() for s in said)
        assert before == (turn >= len(FILLERS.cores)), line
        said.append(line)
    assert len(set(said)) == len(said)
    # A pure function of the seed and what was said before.
    again = [FILLERS.pick(random.Random(f"7:user:{turn}"), said[:turn]) for turn in range(5)]
    assert again == said[:5]


def test_directions_to_the_user_are_never_told_as_facts() -> None:
    # An instruction line may state a fact and then tell the simulated user how to play
    # it; the user says the fact, never the direction.
    task = msgspec.convert({"id": "t", "user_scenario": {"instructions": {
        "domain": "airline", "reason_for_call": "You want to add a bag.",
        "task_instructions": (
            "You do not know the reservation code: describe the trip as above and let the "
            "agent find it among your reservations.\n"
            "You do not know flight numbers or schedules: let the agent search every "
            "airport. If offered a choice, ask for the cheapest.\n"
            "You have no preference between the dates; what matters is price.\n"
            "If asked for the order id, say you do not have it; the agent can find it.\n"
            "Your user id is ab_12: it is on your card.")}}}, Task)
    _, _, extra = fact_units(task)
    assert extra == ["You do not know the reservation code.",
                     "You do not know flight numbers or schedules.",
                     "You have no preference between the dates; what matters is price.",
                     "Your user id is ab_12: it is on your card."]
    assert first_person(extra[0]) == "I do not know the reservation code."
