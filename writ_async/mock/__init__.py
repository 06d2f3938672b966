"""The mock OpenAI-compatible server: its configuration, the aiohttp service, its
statistics and rate limits, the answer policies, real servers' quirks, and the Responses
route."""
