#!/usr/bin/python3
"""Where a profiled step's time goes: the operators of a Chrome trace by self time.

Usage: /usr/bin/python3 scripts/profile_summary.py TRACE.json [TOP]   (TOP default 20)

TRACE.json is what `msmedcap bench train-step --profile TRACE.json` writes (LibTorch's profiler
over the timed steps). An operator's self time is its duration less that of the operators it
called (events nested inside it on the same thread); summed per name, the shares add up to the
operators' total. Autograd's backward nodes appear under their own names (e.g.
"AddmmBackward0"), so forward and backward work show apart. Prints a markdown table.
"""
import collections
import json
import sys


def main():
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    top = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    data = json.load(open(sys.argv[1]))
    events = data["traceEvents"] if isinstance(data, dict) else data
    by_thread = collections.defaultdict(list)
    for e in events:
        if e.get("ph") == "X" and "dur" in e:
            by_thread[e.get("tid")].append(e)
    self_us, calls = collections.Counter(), collections.Counter()
    for evs in by_thread.values():
        evs.sort(key=lambda e: (e["ts"], -e["dur"]))
        stack = []  # [end, name, child time]
        def close(until):
            while stack and stack[-1][0] <= until:
                end, name, dur, children = stack.pop()
                self_us[name] += max(0.0, dur - children)
                if stack:
                    stack[-1][3] += dur
        for e in evs:
            close(e["ts"])
            stack.append([e["ts"] + e["dur"], e["name"], e["dur"], 0.0])
            calls[e["name"]] += 1
        close(float("inf"))
    total = sum(self_us.values())
    print(f"| operator | self ms | share | calls |\n|---|---:|---:|---:|")
    for name, us in self_us.most_common(top):
        print(f"| {name} | {us / 1e3:.1f} | {100 * us / total:.1f}% | {calls[name]} |")
    print(f"| (all {len(self_us)} operators) | {total / 1e3:.1f} | 100% | {sum(calls.values())} |")


if __name__ == "__main__":
    main()
