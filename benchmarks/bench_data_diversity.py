"""How varied the main job's training data is, before and after (issue 13).

Runs the README's main command, ``writ simulate --config config.toml``, twice: at a
baseline git revision (default 075760f, checked out with ``git worktree add`` into a
temporary folder and run with this venv's Python, ``PYTHONPATH`` set to that worktree) and
at the working tree. Both exports are measured with the *current* ``writ_async.export.datastats``
code, so the figures differ only by what the runs produced. Prints a table with before,
after and after/before, and the goals of issue 13: no assistant sentence (numbers and ids
masked, the greeting aside) in more than 5 % of conversations, and distinct-2 of the
assistant's text at least 3x the baseline's.

    python benchmarks/bench_data_diversity.py [--baseline REV] [--config config.toml]
                                              [--json] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from domains import get_domain  # noqa: E402
from domains import names as domain_names  # noqa: E402
from writ_async.export import datastats  # noqa: E402

DISTINCT_2_GOAL = 3.0  # after / before


def run_main_job(source: Path, config: Path, out: Path) -> float:
    """``writ simulate --config CONFIG --out OUT`` with the code at ``source``; seconds."""
    import time

    env = {**os.environ, "PYTHONPATH": str(source)}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "writ_async", "simulate", "--config", str(config),
                    "--out", str(out)], cwd=source, env=env, check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def figures(stats: dict[str, Any]) -> dict[str, float]:
    text = stats["assistant_text"]
    return {
        "rows": stats["rows"],
        "tokens/row (estimate)": stats["tokens_per_row"]["total"]["mean"],
        "assistant tokens/row": stats["tokens_per_row"]["assistant"]["mean"],
        "turns/row": stats["turns_per_row"]["mean"],
        "tool calls/row": stats["tool_calls_per_row"]["mean"],
        "assistant text messages": text["messages"],
        "distinct-1": text["distinct_1"],
        "distinct-2": text["distinct_2"],
        "distinct-3": text["distinct_3"],
        "distinct-2, values masked": text["distinct_2_masked"],
        "distinct masked sentences": text["distinct_sentences"],
        "top sentence share": text["top_sentence_share"],
        "duplicate message share": text["duplicate_share"],
    }


def render(before: dict[str, Any], after: dict[str, Any], baseline: str) -> str:
    fb, fa = figures(before), figures(after)
    lines = [f"{'figure':<28} {'before':>10} {'after':>10} {'after/before':>13}"]
    for key, b in fb.items():
        a = fa[key]
        ratio = f"{a / b:.2f}x" if b else "-"
        lines.append(f"{key:<28} {b:>10.4g} {a:>10.4g} {ratio:>13}")
    lines.append("")
    for label, stats in (("before", before), ("after", after)):
        source = baseline if label == "before" else "working tree"
        lines.append(f"top sentences {label} ({source}):")
        for top in stats["assistant_text"]["top_sentences"]:
            lines.append(f"  {top['share']:>6.1%}  {top['sentence'][:90]}")
    d2 = fa["distinct-2"] / fb["distinct-2"] if fb["distinct-2"] else 0.0
    share = fa["top sentence share"]
    lines.append("")
    lines.append(f"goal: top sentence in <= 5% of conversations: after {share:.1%} -> "
                 f"{'met' if share <= datastats.SENTENCE_GOAL else 'NOT met'}")
    key = "distinct-2, values masked"
    masked = fa[key] / fb[key] if fb[key] else 0.0
    lines.append(f"goal: distinct-2 >= {DISTINCT_2_GOAL:.0f}x before: {d2:.2f}x -> "
                 f"{'met' if d2 >= DISTINCT_2_GOAL else 'NOT met'} (values masked: "
                 f"{masked:.2f}x)")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", default="075760f", help="git revision (default 075760f)")
    parser.add_argument("--config", default="config.toml",
                        help="the config, relative to each tree (default config.toml)")
    parser.add_argument("--json", action="store_true", help="print both stats as JSON")
    parser.add_argument("--keep", metavar="DIR", help="keep both runs under DIR")
    args = parser.parse_args()

    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="writ-diversity-"))
    work.mkdir(parents=True, exist_ok=True)
    tree = work / "baseline-tree"
    subprocess.run(["git", "worktree", "add", "--detach", str(tree), args.baseline],
                   cwd=REPO, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        t_before = run_main_job(tree, tree / args.config, work / "before")
        t_after = run_main_job(REPO, REPO / args.config, work / "after")
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=REPO,
                       check=True)
    kinds = datastats.toolbox_kinds({name: get_domain(name) for name in domain_names()})
    before = datastats.stats_of(work / "before", kind_of=kinds)
    after = datastats.stats_of(work / "after", kind_of=kinds)
    if args.json:
        print(json.dumps({"baseline": args.baseline, "before": before, "after": after},
                         indent=2))
    else:
        print(f"main job: writ simulate --config {args.config}; before = {args.baseline} "
              f"({t_before:.1f} s), after = working tree ({t_after:.1f} s)")
        print(render(before, after, args.baseline))
    if not args.keep:
        shutil.rmtree(work)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
