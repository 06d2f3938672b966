"""``writ mock-server``: the mock OpenAI-compatible endpoint, served until interrupted."""

from __future__ import annotations

import argparse
import contextlib
from typing import Any

import msgspec

from writ_async.commands.args import checked_config, run_async
from writ_async.errors import ConfigError
from writ_async.logs import configure_logging


def add_parser(commands: Any) -> None:
    p = commands.add_parser(
        "mock-server", help="serve the mock OpenAI-compatible endpoint until interrupted",
        description="Serve the mock OpenAI-compatible endpoint (/v1/chat/completions, "
                    "/v1/models, /stats) until interrupted.",
        epilog=MOCK_SERVER_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", metavar="PATH", help="config.toml whose [mock] section to use")
    p.add_argument("--host", help="overrides [mock] host (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="overrides [mock] port (0: pick a free one)")
    p.add_argument("--ttft-ms", type=float, help="time to first token, milliseconds")
    p.add_argument("--tpot-ms", type=float, help="time per output token, milliseconds")
    p.add_argument("--jitter-ms", type=float, help="uniform jitter on each delay, milliseconds")
    p.add_argument("--seed", type=int, help="overrides [mock] seed")
    p.add_argument("--policy", choices=["plausible", "shape"],
                   help="overrides [mock] policy (default plausible; see policies below)")
    p.set_defaults(run=cmd_mock_server)


# What `writ mock-server --help` lists; the mock's FaultRates and MockConfig.policy are
# the source (tests/test_cli_input.py checks that every fault and policy is named here).
# Written out rather than imported, so that `writ --help` does not load aiohttp.
MOCK_SERVER_EPILOG = """\
faults: per-request probabilities from 0 to 1, set in [mock.faults] of --config
(e.g. error_5xx = 0.01); all 0 by default:
  stall              wait [mock] stall_s (or until the client leaves), then answer
  reset              drop the connection, before any byte or after a chunk of a stream
  error_5xx          500, 502 or 503 with an error JSON body
  error_object_200   200 whose body is {"error": ...}
  malformed_json     200 with cut-off JSON or an HTML page
  truncated_stream   a stream that ends early: no finish_reason, no [DONE]
  invalid_tool_args  tool-call arguments that are not valid JSON
  unholdable_tool_args tool-call arguments holding NaN, 1e400, a 400-digit integer
                     or arrays nested 100,000 deep
  no_usage           usage left out of the answer

refusals, set in [mock]: 401 without api_key/api_key_env's key, 404 for a model not in
models (when set), 400 past max_context_tokens, 429 past rpm_limit/tpm_limit.

policies (--policy, or [mock] policy):
  plausible          text, and schema-valid tool calls when the conversation calls for
                     one (default)
  shape              a fixed conversation shape, [mock] shape_tool_calls tool calls per
                     agent turn and shape_user_turns user turns, for comparing runners

GET /v1/models lists [mock] models, or else the model of each endpoint of [models]
whose base_url is "mock" (writ-mock by default).
"""


def cmd_mock_server(args: argparse.Namespace) -> int:
    from writ_async.llm.setup import mock_model_names
    from writ_async.mock.server import MockServer, serve_forever

    config = checked_config(args.config)
    configure_logging(config.logging.level, config.logging.format)
    overrides = {
        name: value
        for name, value in (("host", args.host), ("port", args.port), ("ttft_ms", args.ttft_ms),
                            ("tpot_ms", args.tpot_ms), ("jitter_ms", args.jitter_ms),
                            ("seed", args.seed), ("policy", args.policy))
        if value is not None
    }
    try:
        mock = msgspec.convert({**msgspec.to_builtins(config.mock), **overrides},
                               type(config.mock))
    except msgspec.ValidationError as exc:
        raise ConfigError(args.config or "<command line>", str(exc), "mock") from None

    def ready(server: MockServer) -> None:
        print(f"mock server listening on {server.url}", flush=True)

    # Clients configured from this file ask for their endpoint's model name: list it.
    listed = mock_model_names(config.models)
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how it is meant to stop
        run_async(serve_forever(mock, on_ready=ready, listed_models=listed))
    return 0
