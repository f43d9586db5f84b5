#!/usr/bin/env python3
"""Prints "<passed> <failed>" test cases from a meson JSON test log (meson test --logbase).

A Catch2 binary's cases come from its closing summary ("All tests passed (A assertions in N
test cases)" or "test cases: N | P passed | F failed"). A test without such a summary (a
script, or a binary that crashed or timed out before printing one) counts as one case, passed
or failed by meson's result.
"""
import json
import re
import sys

ALL_PASSED = re.compile(r"All tests passed \(\d+ assertions? in (\d+) test cases?\)")
SUMMARY = re.compile(r"^test cases:\s*(\d+)\s*\|(.*)$", re.MULTILINE)


def cases(entry):
    passed, failed = catch2_cases(entry)
    if entry.get("result") not in ("OK", "EXPECTEDFAIL", "SKIP") and failed == 0:
        failed = 1  # all its cases passed, yet the binary failed (exit code, leak, crash at exit)
    return passed, failed


def catch2_cases(entry):
    out = (entry.get("stdout") or "") + (entry.get("stderr") or "")
    if entry.get("result") in ("OK", "FAIL"):
        m = list(ALL_PASSED.finditer(out))
        if m:
            return int(m[-1].group(1)), 0
        m = list(SUMMARY.finditer(out))
        if m:
            total, rest = int(m[-1].group(1)), m[-1].group(2)
            ok = sum(int(n) for n in re.findall(r"(\d+) passed", rest))
            ok += sum(int(n) for n in re.findall(r"(\d+) failed as expected", rest))
            return ok, total - ok
        if "No tests ran" in out:
            return 0, 0
    if entry.get("result") in ("OK", "EXPECTEDFAIL", "SKIP"):
        return (0, 0) if entry.get("result") == "SKIP" else (1, 0)
    return 0, 1


def main(path):
    passed = failed = 0
    with open(path, encoding="utf-8", errors="replace") as log:
        for line in log:
            if line.strip():
                p, f = cases(json.loads(line))
                passed, failed = passed + p, failed + f
    print(passed, failed)


if __name__ == "__main__":
    main(sys.argv[1])
