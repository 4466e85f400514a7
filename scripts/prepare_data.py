#!/usr/bin/env python3
"""Tokenises instruction data offline into mira_hpc's pre-tokenised HDF5 format
(data.source = pretokenized; layout in docs/data.md and src/data/source_pretokenized.cpp).

Usage (from the repository root, with numpy + h5py, and `tokenizers` for --tokenizer hf):
  /root/mira-venv/bin/python scripts/prepare_data.py --input data.jsonl --output data.h5 \
      [--tokenizer byte | --tokenizer hf --tokenizer-path FOLDER] \
      [--prompt-field instruction] [--input-field context] [--response-field response] \
      [--client-field category] [--family-field FIELD] [--template alpaca|raw] [--max-length 1024]

Each distinct value of --client-field (sorted) becomes one client; --family-field (default: the
client field) gives the task-family id (distinct values sorted). Prompts use the same templates as
the C++ readers (alpaca = the Dolly templates of MIRA.md, raw = prompt, then input on a new line);
the target is the response followed by EOS. Examples longer than --max-length are written whole:
mira_hpc truncates them at load time with its data.max_length rule and counts them. No /split is
written, so mira_hpc splits each client by data.seed and data.train_fraction. Rows are written in
input order; each rank reads only its clients' rows, one read per run of consecutive rows, so input
grouped by client is read in one piece per client.
"""
import argparse
import json
import sys

import h5py
import numpy as np

DOLLY_CTX = ("Below is an instruction that describes a task, paired with an input that provides further context. "
             "Write a response for the task request.\n\n### Instruction:\n{instruction}\n\n### Input:\n{context}"
             "\n\n### Response:")
DOLLY_NO_CTX = ("Below is an instruction that describes a task. Write a response for the task request.\n\n"
                "### Instruction:\n{instruction}\n\n### Response:")


class ByteTok:
    eos = 256
    vocab_size = 257
    name = "byte"

    def encode(self, text):
        return list(text.encode("utf-8"))


class HfTok:
    def __init__(self, folder):
        from tokenizers import Tokenizer
        self.tok = Tokenizer.from_file(folder + "/tokenizer.json")
        self.eos = self.tok.token_to_id("<|endoftext|>")
        if self.eos is None:
            sys.exit("error: %s/tokenizer.json has no <|endoftext|> token" % folder)
        self.vocab_size = self.tok.get_vocab_size(with_added_tokens=True)
        self.name = "hf:" + folder

    def encode(self, text):
        return self.tok.encode(text, add_special_tokens=False).ids


def prompt_of(args, obj):
    instr = obj[args.prompt_field]
    inp = obj.get(args.input_field, "") if args.input_field else ""
    if args.template == "alpaca":
        return DOLLY_CTX.format(instruction=instr, context=inp) if inp else DOLLY_NO_CTX.format(instruction=instr)
    return instr + ("\n" + inp if inp else "")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--input", required=True)
    ap.add_argument("--output", required=True)
    ap.add_argument("--tokenizer", choices=["byte", "hf"], default="byte")
    ap.add_argument("--tokenizer-path")
    ap.add_argument("--prompt-field", default="instruction")
    ap.add_argument("--input-field", default="context")
    ap.add_argument("--response-field", default="response")
    ap.add_argument("--client-field", default="category")
    ap.add_argument("--family-field")
    ap.add_argument("--template", choices=["alpaca", "raw"], default="alpaca")
    args = ap.parse_args()
    tok = ByteTok() if args.tokenizer == "byte" else HfTok(args.tokenizer_path)

    rows = []
    with open(args.input, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                fields = [args.prompt_field, args.response_field, args.client_field]
                missing = [k for k in fields if k not in obj]
                if missing:
                    raise ValueError("missing field %r" % missing[0])
            except ValueError as e:
                sys.exit("error: %s:%d: %s" % (args.input, lineno, e))
            if not obj[args.response_field].strip():
                print("warning: %s:%d: empty response, skipped" % (args.input, lineno), file=sys.stderr)
                continue
            rows.append(obj)
    clients = sorted({r[args.client_field] for r in rows})
    ffield = args.family_field or args.client_field
    families = sorted({r[ffield] for r in rows})
    client_family = {}
    tokens, labels, offsets, client = [], [], [0], []
    for r in rows:
        p = tok.encode(prompt_of(args, r))
        t = tok.encode(r[args.response_field]) + [tok.eos]
        tokens += p + t
        labels += [0] * len(p) + [1] * len(t)
        offsets.append(len(tokens))
        k = clients.index(r[args.client_field])
        client.append(k)
        client_family[k] = families.index(r[ffield])
    with h5py.File(args.output, "w") as h:
        h.attrs["format"] = "mira-pretokenized"
        h.attrs["version"] = np.int64(1)
        h.attrs["num_clients"] = np.int64(len(clients))
        h.attrs["vocab_size"] = np.int64(tok.vocab_size)
        h.attrs["eos_id"] = np.int64(tok.eos)
        h.attrs["tokenizer"] = tok.name
        h.attrs["client_names"] = json.dumps(clients)
        h.create_dataset("tokens", data=np.asarray(tokens, dtype=np.int32))
        h.create_dataset("labels", data=np.asarray(labels, dtype=np.uint8))
        h.create_dataset("offsets", data=np.asarray(offsets, dtype=np.int64))
        h.create_dataset("client", data=np.asarray(client, dtype=np.int32))
        h.create_dataset("client_family", data=np.asarray([client_family[k] for k in range(len(clients))],
                                                          dtype=np.int32))
    print("wrote %s: %d examples, %d clients, %d tokens" % (args.output, len(rows), len(clients), len(tokens)),
          file=sys.stderr)


if __name__ == "__main__":
    main()
