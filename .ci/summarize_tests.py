"""Prints, per JUnit XML report (pytest's --junitxml, ctest's --output-junit), how many tests ran, failed and
skipped, then one line per skip reason with its count, so a CI log says at its end what did not run and why.

Usage: python .ci/summarize_tests.py LABEL=REPORT.xml [LABEL=REPORT.xml ...]   (missing reports are named)
"""
from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path


def _skip_reason(case: ET.Element, skipped: ET.Element) -> str:
    message = (skipped.get("message") or skipped.text or "").strip()
    if message.startswith("SKIP_RETURN_CODE"):  # ctest: the test's own output says why
        output = (case.findtext("system-out") or "").strip().splitlines()
        message = output[-1] if output else message
    return message.splitlines()[0] if message else "(no reason given)"


def summarize(label: str, path: Path) -> list[str]:
    """Summary lines of one report: totals first, then '  N skipped: reason' lines, most frequent first."""
    if not path.is_file():
        return [f"{label}: no report ({path}): the stage did not run or did not finish"]
    cases = list(ET.parse(path).getroot().iter("testcase"))
    failed = sum(1 for c in cases if c.find("failure") is not None or c.find("error") is not None)
    reasons: Counter = Counter()
    where: dict[str, set] = {}
    for case in cases:
        for skipped in case.findall("skipped"):
            reason = _skip_reason(case, skipped)
            reasons[reason] += 1
            # pytest: tests.test_x.TestClass -> test_x; ctest: the test's name
            where.setdefault(reason, set()).add((case.get("classname") or "").removeprefix("tests.").split(".")[0])
    skipped = sum(reasons.values())
    lines = [f"{label}: {len(cases) - skipped} ran ({failed} failed), {skipped} skipped"]
    for reason, count in reasons.most_common():
        lines.append(f"  {count:4d} skipped: {reason} [{', '.join(sorted(where[reason]))}]")
    return lines


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    print("== test summary")
    for arg in argv:
        label, _, path = arg.partition("=")
        print("\n".join(summarize(label, Path(path))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
