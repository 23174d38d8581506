#!/usr/bin/env python3
"""Compares what README.md shows a command print with what it printed.

    readme_shape.py README.md PATH OUTPUT   # exit 0: every step has the shape the README shows

README.md is read the way tests/e2e/readme_test.sh reads it: each
`<!-- PATH:begin -->` ... `<!-- PATH:end -->` region is one step (its ```sh
blocks run in one shell), and the first fenced block that follows the region
and is not ```sh (before the next region) is the output the README shows for
that step (none when a heading comes first). OUTPUT is the run's combined output, with a line
`@@readme-step N@@` (N from 1) before each step's output.

Shape, not bytes: both sides are normalized first (timestamps, ids, times in
ms/s and runs of spaces, which change from run to run), the command echo
lines (`$ ...`) and Compose's progress lines are dropped from the output,
and in the README's block:
  - a line `...` stands for any number of lines;
  - `…` inside a line stands for any text;
  - a line `<!-- shape: any order -->` right before the block lets its lines
    come in any order (log lines of several services, say);
every other line must match one output line, in order, and nothing may come
between two lines the README shows next to each other.
"""
import re
import sys

STEP_MARK = re.compile(r"^@@readme-step (\d+)@@$")
# What Compose prints around `run`, `up` and `exec` (v1 and v2), not the commands.
COMPOSE_NOISE = re.compile(
    r"^(Creating|Starting|Stopping|Stopped|Removing|Recreating|Killing|Pulling|Building|Network|Volume|"
    r"Container|Waiting|Healthy|Started|Created|Running|\[\+\]|#\d+ |WARNING: Found orphan)"
    r"|^\S+ is up-to-date$"
    # 1.29 says so on --scale for any host port, a range too.
    r"|^The \"[^\"]+\" service specifies a port on the host"
)
ANSI = re.compile(r"\x1b\[[0-9;]*m")

NORMALIZE = [
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z"), "<time>"),
    (re.compile(r"\b(ord|pay|evt|res)-[0-9a-z]{6,}"), r"\1-<id>"),
    (re.compile(r"\b\d+(\.\d+)?(ms|s|µs)\b"), "<dur>"),
    (re.compile(r"\s+"), " "),
]


def normalize(line):
    for pattern, repl in NORMALIZE:
        line = pattern.sub(repl, line)
    return line.strip()


def expected_steps(readme, path):
    """[(step number, [lines] or None, any_order)] in README order."""
    begin, end = f"<!-- {path}:begin -->", f"<!-- {path}:end -->"
    steps, inside, fence, any_order, lines = [], False, None, False, []
    for raw in readme.splitlines():
        if raw == begin:
            inside = True
            steps.append([len(steps) + 1, None, False])
            continue
        if raw == end:
            inside = False
            continue
        if inside or not steps or steps[-1][1] is not None:
            continue
        if fence is None and raw.startswith("#"):
            steps[-1][1] = []  # a new section: this step shows no output
            continue
        if fence is None:
            if raw.strip() == "<!-- shape: any order -->":
                any_order = True
            elif raw.startswith("```") and not raw.startswith("```sh"):
                fence, lines = raw, []
            elif raw.startswith("```sh"):
                fence = "sh"  # a block that is not run: not an output either
            elif raw.strip():
                any_order = False
            continue
        if raw.startswith("```"):
            if fence != "sh":
                steps[-1][1], steps[-1][2] = lines, any_order
            fence, any_order = None, False
            continue
        if fence != "sh":
            lines.append(raw)
    return [tuple(s) for s in steps]


def actual_steps(output):
    steps, current = {}, None
    for raw in output.splitlines():
        raw = ANSI.sub("", raw)
        m = STEP_MARK.match(raw)
        if m:
            current = int(m.group(1))
            steps[current] = []
        elif current is not None and not raw.startswith("$ ") and not COMPOSE_NOISE.match(raw):
            if raw.strip():
                steps[current].append(raw)
    return steps


def line_pattern(expected):
    parts = [re.escape(p) for p in normalize(expected).split("…")]
    return re.compile("^" + ".*".join(parts) + "$")


def match_in_order(patterns, actual):
    """True when actual fits the patterns; None in patterns is a `...` gap."""

    def fit(i, j):
        if i == len(patterns):
            return j == len(actual)
        if patterns[i] is None:
            return any(fit(i + 1, k) for k in range(j, len(actual) + 1))
        return j < len(actual) and patterns[i].match(actual[j]) is not None and fit(i + 1, j + 1)

    return fit(0, 0)


def match_any_order(patterns, actual):
    gap = None in patterns
    left = list(actual)
    for p in (p for p in patterns if p is not None):
        hit = next((a for a in left if p.match(a)), None)
        if hit is None:
            return False
        left.remove(hit)
    return gap or not left


def main():
    if len(sys.argv) != 4:
        print("usage: readme_shape.py README.md PATH OUTPUT", file=sys.stderr)
        return 2
    readme = open(sys.argv[1], encoding="utf-8").read()
    output = open(sys.argv[3], encoding="utf-8", errors="replace").read()
    actual = actual_steps(output)
    failed = checked = 0
    for number, lines, any_order in expected_steps(readme, sys.argv[2]):
        if not lines:
            continue
        checked += 1
        got = [normalize(a) for a in actual.get(number, [])]
        patterns = [
            None if line.strip() == "..." else line_pattern(line) for line in lines if line.strip()
        ]
        ok = (match_any_order if any_order else match_in_order)(patterns, got)
        if not ok:
            failed += 1
            print(f"readme_shape: step {number}: the output does not have the README's shape", file=sys.stderr)
            print("  README shows (normalized):", file=sys.stderr)
            for line in lines:
                print("    " + normalize(line), file=sys.stderr)
            print("  the run printed (normalized, first 40 lines):", file=sys.stderr)
            for line in got[:40]:
                print("    " + line[:200], file=sys.stderr)
    print(f"readme_shape: {checked - failed} of {checked} output blocks have the README's shape")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
