#!/usr/bin/env python3
"""Regenerates the synthetic dataset fixtures of tests/fixtures/data (tests/fixtures/data/README.md):

  dolly_small.jsonl      48 lines in Dolly-15k's format (instruction, context, response, category),
                         6 per category in the order of src/data/source_jsonl.cpp's category list;
                         every other line has an empty context (the no-context template), subjects
                         drawn by random.Random(11) from a fixed list; responses contain non-ASCII
                         text (UTF-8 through the byte tokenizer).
  generic_small.jsonl    15 lines with custom field names (prompt, answer, task), 3 tasks x 5.
  ni/tasks/*.json        four Natural Instructions task files (Contributors, Source, Categories,
                         Definition, Instances with id/input/output) and
  ni/train_tasks.txt     their task list (with a blank line, which the reader skips).
                         task001 has 2 of 30 inputs at exactly 1024 code points (dropped by the
                         >= data.ni.max_input_chars filter), task002 keeps 18 of 21 (< 20: skipped),
                         task003 keeps all 40, task004 all 25.
  pretokenized_small.h5  generic_small.jsonl through scripts/prepare_data.py (byte tokenizer, raw
                         template); only with --with-h5, which needs numpy + h5py.

No network, no randomness beyond the fixed seed: the output is byte for byte the committed files
(checked with cmp; the .h5 too, with h5py 3.7 / HDF5 1.10.8 and h5py 3.16 / HDF5 2.0.0).
Run from anywhere (the JSON files need only the standard library):
  python3 scripts/make_data_fixtures.py [--out DIR] [--with-h5]
  --with-h5 runs prepare_data.py with the same interpreter, so use one with numpy + h5py
  (/usr/bin/python3 with Debian's python3-h5py, or /root/mira-venv/bin/python).
DIR defaults to tests/fixtures/data; files there are overwritten. Check: `git diff --stat` (or
`cmp` against a copy) shows nothing when the committed fixtures are current.
"""
import argparse
import json
import os
import random
import subprocess
import sys

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

# The eight Dolly-15k categories, in the order src/data/source_jsonl.cpp numbers them.
DOLLY_CATEGORIES = ["brainstorming", "classification", "closed_qa", "creative_writing", "general_qa",
                    "information_extraction", "open_qa", "summarization"]
DOLLY_PER_CATEGORY = 6
DOLLY_SEED = 11
SUBJECTS = ["a lighthouse", "the moon", "a bicycle", "green tea", "a violin", "the desert", "a glacier",
            "honey bees", "a library", "the harbour", "a windmill", "paper kites"]

GENERIC_TASKS = ["spell", "rhyme", "echo"]
GENERIC_PER_TASK = 5

# NI tasks: (name, category, instances, how many leading instances get a 1024-code-point input).
NI_TASKS = [("task001_qa_demo", "Question Answering", 30, 2),
            ("task002_short_demo", "Text Matching", 21, 3),
            ("task003_sentiment_demo", "Sentiment Analysis", 40, 0),
            ("task004_qa_more", "Question Answering", 25, 0)]
NI_LONG_CHARS = 1024  # == the default data.ni.max_input_chars: the filter drops inputs >= this


def write_text(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
    print(path)


def jsonl(rows):
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def dolly_rows():
    rng = random.Random(DOLLY_SEED)
    rows = []
    for cat in DOLLY_CATEGORIES:
        for i in range(DOLLY_PER_CATEGORY):
            s = rng.choice(SUBJECTS)
            rows.append({
                "instruction": f"Say something about {s} for {cat}, item {i}.",
                "context": f"Notes on {s}: it is old, it is useful, and people like it ({i})." if i % 2 == 0 else "",
                "response": f"{s[0].upper() + s[1:]} is interesting: fact {i} about {cat} été 😀.",
                "category": cat,
            })
    return rows


def generic_rows():
    return [{"prompt": f"{t} the word w{i}", "answer": f"{t}-w{i}", "task": t}
            for t in GENERIC_TASKS for i in range(GENERIC_PER_TASK)]


def ni_task(name, category, n, n_long):
    long_input = ("long input " * (NI_LONG_CHARS // 11 + 1))[:NI_LONG_CHARS]
    return {
        "Contributors": ["mira-hpc tests"],
        "Source": ["generated"],
        "Categories": [category],
        "Definition": [f"Answer the question of {name}.", "unused second definition"],
        "Instances": [{"id": f"{name}-{i}",
                       "input": long_input if i < n_long else f"Input number {i} for {name}: café?",
                       "output": [f"answer {i}", f"alt {i}"]} for i in range(n)],
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "fixtures", "data"))
    ap.add_argument("--with-h5", action="store_true", help="also write pretokenized_small.h5 (numpy + h5py)")
    args = ap.parse_args()
    out = args.out

    write_text(os.path.join(out, "dolly_small.jsonl"), jsonl(dolly_rows()))
    generic = os.path.join(out, "generic_small.jsonl")
    write_text(generic, jsonl(generic_rows()))
    for name, category, n, n_long in NI_TASKS:
        write_text(os.path.join(out, "ni", "tasks", name + ".json"),
                   json.dumps(ni_task(name, category, n, n_long), indent=0, ensure_ascii=False))
    names = [t[0] for t in NI_TASKS]
    write_text(os.path.join(out, "ni", "train_tasks.txt"), "\n".join(names[:2] + [""] + names[2:]) + "\n")

    if args.with_h5:
        h5 = os.path.join(out, "pretokenized_small.h5")
        subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "prepare_data.py"), "--input", generic,
                        "--output", h5, "--tokenizer", "byte", "--prompt-field", "prompt", "--input-field", "",
                        "--response-field", "answer", "--client-field", "task", "--template", "raw"], check=True)
        print(h5)


if __name__ == "__main__":
    main()
