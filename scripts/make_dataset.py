#!/usr/bin/env python3
"""Write a halo token dataset (.bin) with byte-level tokens (vocab 256).

The format (docs/formats.md, "Token dataset (.bin)") is a 1024-byte header of
256 little-endian uint32 words -- magic 0x4B4F5448 ("HTOK"), version 1, token
width in bytes, token count (low, high word), vocab size, zeros -- followed by
the tokens. Byte-level means token = byte value, so any text file works and no
tokenizer is needed. --synthetic writes a deterministic, learnable corpus
(templated sentences, fixed facts, small arithmetic) from a splitmix64 stream,
so the same --seed and size give the same bytes on every Python version.
Standard library only. Writes <out>.tmp, fsyncs, then renames over <out>.
"""

import argparse
import os
import struct
import sys
from array import array

MAGIC = 0x4B4F5448
VERSION = 1
HEADER_WORDS = 256
VOCAB = 256
MASK = (1 << 64) - 1


def splitmix64(x):
    """Same hash as halo::io::splitmix64 in runtime/io/TokenDataset.cpp."""
    z = (x + 0x9E3779B97F4A7C15) & MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


class Rng:
    """splitmix64 sequence; random.Random is avoided because its derived
    methods are not promised stable across Python versions."""

    def __init__(self, seed):
        self.state = seed & MASK

    def below(self, n):
        value = splitmix64(self.state)
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK
        return value % n

    def pick(self, items):
        return items[self.below(len(items))]


NAMES = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"]
ADJECTIVES = ["small", "big", "red", "green", "old", "new", "happy", "quiet"]
NOUNS = ["cat", "dog", "bird", "fish", "horse", "mouse", "tree", "house"]
PLACES = ["garden", "kitchen", "forest", "river", "market", "school"]
VERBS = ["sees", "likes", "follows", "finds", "helps", "watches"]
CAPITALS = [("france", "paris"), ("italy", "rome"), ("spain", "madrid"),
            ("japan", "tokyo"), ("egypt", "cairo"), ("peru", "lima"),
            ("kenya", "nairobi"), ("norway", "oslo")]
COLORS = [("sky", "blue"), ("grass", "green"), ("snow", "white"),
          ("coal", "black"), ("sun", "yellow"), ("blood", "red")]
NUMBER_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven",
                "eight", "nine"]


def synthetic_line(rng):
    """One line of the synthetic corpus; each kind has a learnable rule."""
    kind = rng.below(8)
    if kind <= 2:
        a, b = rng.below(100), rng.below(100)
        return f"{a}+{b}={a + b}."
    if kind == 3:
        a, b = rng.below(100), rng.below(100)
        return f"{max(a, b)}-{min(a, b)}={max(a, b) - min(a, b)}."
    if kind == 4:
        return (f"the {rng.pick(ADJECTIVES)} {rng.pick(NOUNS)} "
                f"{rng.pick(VERBS)} the {rng.pick(ADJECTIVES)} "
                f"{rng.pick(NOUNS)} in the {rng.pick(PLACES)}.")
    if kind == 5:
        n = rng.below(10)
        noun = rng.pick(NOUNS)
        return (f"{rng.pick(NAMES)} has {NUMBER_WORDS[n]} "
                f"{noun}{'' if n == 1 else 's'}.")
    if kind == 6:
        country, city = rng.pick(CAPITALS)
        return f"the capital of {country} is {city}."
    start = rng.below(6)
    words = " ".join(NUMBER_WORDS[start:start + 5])
    thing, color = rng.pick(COLORS)
    return f"the {thing} is {color}. count: {words}."


def synthetic_corpus(size, seed):
    rng = Rng(seed)
    out = bytearray()
    while len(out) < size:
        out += synthetic_line(rng).encode("ascii") + b"\n"
    return bytes(out[:size])


def write_dataset(path, tokens, width):
    code = "H" if width == 2 else "I"
    body = array(code, tokens)
    if body.itemsize != width:
        sys.exit(f"{path}: this Python's array('{code}') has "
                 f"{body.itemsize}-byte items, need {width}; "
                 "hint: use --width 2")
    if sys.byteorder == "big":
        body.byteswap()
    count = len(tokens)
    header = [0] * HEADER_WORDS
    header[0:6] = [MAGIC, VERSION, width, count & 0xFFFFFFFF, count >> 32,
                   VOCAB]
    tmp = path + ".tmp"
    try:
        with open(tmp, "wb") as f:
            f.write(struct.pack(f"<{HEADER_WORDS}I", *header))
            f.write(body.tobytes())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        sys.exit(f"{path}: cannot write: {e.strerror}; "
                 "hint: check that the directory exists and is writable")


def main():
    parser = argparse.ArgumentParser(
        description="Write a halo token dataset (.bin) of byte-level tokens "
        "(vocab 256) from a text file or a synthetic corpus.",
        epilog="Regenerate the shipped example with: scripts/make_dataset.py "
        "--synthetic 524288 --seed 1 -o examples/data/tiny.bin")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--text", metavar="FILE",
                        help="tokenize this file's bytes (token = byte value)")
    source.add_argument("--synthetic", metavar="BYTES", type=int,
                        help="generate a deterministic learnable corpus of "
                        "exactly BYTES bytes")
    parser.add_argument("--seed", type=int, default=1,
                        help="seed for --synthetic (default 1)")
    parser.add_argument("--width", type=int, choices=[2, 4], default=2,
                        help="bytes per token on disk (default 2 = uint16)")
    parser.add_argument("-o", "--output", required=True, metavar="OUT",
                        help="path of the .bin file to write")
    args = parser.parse_args()

    if args.text is not None:
        try:
            with open(args.text, "rb") as f:
                data = f.read()
        except OSError as e:
            sys.exit(f"{args.text}: cannot read: {e.strerror}; "
                     "hint: pass an existing text file to --text")
        if not data:
            sys.exit(f"{args.text}: file is empty; "
                     "hint: a dataset needs at least seq_len + 1 tokens")
    else:
        if args.synthetic <= 0:
            sys.exit(f"--synthetic {args.synthetic}: size must be positive; "
                     "hint: e.g. --synthetic 524288")
        data = synthetic_corpus(args.synthetic, args.seed)
    write_dataset(args.output, list(data), args.width)
    print(f"{args.output}: {len(data)} tokens, width {args.width}, "
          f"vocab {VOCAB}")


if __name__ == "__main__":
    main()
