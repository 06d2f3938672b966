"""Model endpoints: the OpenAI wire format (chat completions and the Responses API), the
client, the shared rate-limited pool, retries, stream parsing and assembly."""
