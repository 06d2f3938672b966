"""The agent and the user: LLM and scripted participants, prompts, behaviours."""
