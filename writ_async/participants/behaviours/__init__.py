"""WRIT stage 2: user behaviours, the same task told by different kinds of users.

A behaviour changes how the user *reveals and phrases* a task, never what the task is:
the gold actions, the gold end state and the strings the agent must communicate stay
those of the task. Behaviours compose (a terse user who gives facts out of order), except
where they contradict each other (``Behaviour.excludes``): a user cannot both give
everything up front and reveal one fact at a time, nor be both terse and verbose.

The catalogue drives both kinds of user:

* the scripted user (``scripted.user.ScriptedUser(..., behaviours=...)``) implements each one
  in its replies, with the content defined here (preferences, fillers, the identifier it
  mistypes, the phrasing rules) and the domain's own (``Domain.forbidden_requests`` and
  ``Domain.vague_openers``; generic ones for a domain without);
* an LLM user simulator gets ``user_prompt_block`` appended to its guidelines
  (``with_behaviours``), naming the same forbidden request, preference and mistyped
  identifier as the scripted user would for that episode's seed.

``catalogue`` names the behaviours; ``scenarios`` composes them into a run's scenarios;
``content`` and ``user_phrases`` are what a behaving user says, ``phrasing`` how the
scripted user rewords its instructions.
"""
