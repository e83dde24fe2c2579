"""Checks halo-run loss curves (JSONL metrics): each falls by a margin, and the
curves stay close to each other. Usage:
  check_curves.py --min-drop D --max-gap G a.jsonl [b.jsonl ...]
The drop is first logged loss minus the mean of the last 5; the gap is the
largest difference between the runs' last-5 means."""
import argparse
import json
import sys


def losses(path):
    with open(path) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return [r["loss"] for r in rows if "loss" in r]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--min-drop", type=float, required=True)
    p.add_argument("--max-gap", type=float, required=True)
    p.add_argument("runs", nargs="+")
    a = p.parse_args()
    ends = []
    for run in a.runs:
        ls = losses(run)
        if len(ls) < 10:
            sys.exit(f"{run}: only {len(ls)} logged losses")
        end = sum(ls[-5:]) / 5
        drop = ls[0] - end
        print(f"{run}: first {ls[0]:.4f} last-5 mean {end:.4f} drop {drop:.4f}")
        if drop < a.min_drop:
            sys.exit(f"{run}: loss fell by {drop:.4f} < {a.min_drop}")
        ends.append(end)
    gap = max(ends) - min(ends)
    print(f"gap between runs {gap:.4f}")
    if gap > a.max_gap:
        sys.exit(f"final losses differ by {gap:.4f} > {a.max_gap}")


if __name__ == "__main__":
    main()
