"""The assistant wording an export repeats most: where to give the phrase bank more
alternatives (issue 13).

Reads an OpenAI-format SFT export (a run folder or its ``export/sft_openai.jsonl``) and
prints, over the assistant's text messages (the greeting left out, as ``writ data stats``
does): the masked sentences in the most conversations, the most frequent sentence
openings (first words, masked) and the most frequent bigrams and trigrams, each with its
count and its share of the whole.

    python benchmarks/repeated_wording.py RUN_OR_FILE [--top 25] [--opening 4]
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from writ_async.export import datastats  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", help="a run folder or an sft_openai.jsonl file")
    parser.add_argument("--top", type=int, default=25, help="rows of each table")
    parser.add_argument("--opening", type=int, default=4, help="words of a sentence opening")
    args = parser.parse_args()

    rows = datastats.load_rows(datastats.export_path(args.path))
    sentence_rows: Counter[str] = Counter()
    openings: Counter[str] = Counter()
    grams: dict[int, Counter[tuple[str, ...]]] = {2: Counter(), 3: Counter()}
    for row in rows:
        in_row: set[str] = set()
        for text in datastats.assistant_texts(row):
            words = datastats._WORD.findall(text.lower())
            for n, counter in grams.items():
                counter.update(datastats.ngrams(words, n))
            for sentence in datastats.split_sentences(text):
                masked = datastats.mask_sentence(sentence)
                in_row.add(masked)
                openings[" ".join(masked.split()[:args.opening])] += 1
        sentence_rows.update(in_row)

    n = len(rows)
    print(f"{n} rows")
    print("\nsentences in the most conversations (masked):")
    for sentence, c in sentence_rows.most_common(args.top):
        print(f"  {c / n:6.1%}  {sentence[:100]}")
    total = sum(openings.values())
    print(f"\nsentence openings ({args.opening} words, masked), of {total} sentences:")
    for opening, c in openings.most_common(args.top):
        print(f"  {c:5d} {c / total:6.1%}  {opening}")
    for size, counter in grams.items():
        total = sum(counter.values())
        print(f"\n{size}-grams, of {total} ({len(counter) / total:.4f} distinct):")
        for gram, c in counter.most_common(args.top):
            print(f"  {c:5d} {c / total:6.2%}  {' '.join(gram)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
