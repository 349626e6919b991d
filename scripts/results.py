#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Turn the logs of one test VM run into test results.

Reads LOGDIR/tests.log (the guest's test channel: TAP from kselftests, KTAP
from KUnit's debugfs, the VM's own setup/teardown checks) and LOGDIR/console.log
(the full kernel log), and appends one line per test to RESULTS:

    PASS [label] kselftest ioasid_test: global.device_node
    FAIL [label] kernel log: clean (no oops, BUG, WARNING, lockdep, ...)

The kernel log is a test of its own: any oops, BUG, WARNING, lockdep report,
kmemleak or KFENCE or UBSAN report, list corruption, RCU stall or IOMMU fault
fails the run, and the offending lines are printed. IOMMU faults are expected
only between the markers a test writes to /dev/kmsg:

    ioasid-test: expect-dma-fault begin
    ioasid-test: expect-dma-fault end

Fault injection (fail_nth_test) makes allocations fail on purpose; the
allocator's report of such a failure ("page allocation failure", "vmalloc
error", a "FAULT_INJECTION: forcing a failure" notice), stack trace
included, is accepted only between

    ioasid-test: fault-injection begin
    ioasid-test: fault-injection end

Anything else there (a WARNING, an oops, lockdep, kmemleak...) still fails
the run, whether or not an injected failure provoked it.

Usage: results.py LOGDIR LABEL RESULTS
"""

import os
import re
import sys

BAD = re.compile(
    r"(Oops|BUG:|WARNING:|kernel BUG at|Kernel panic|general protection fault"
    r"|Call Trace:|possible circular locking|possible recursive locking"
    r"|inconsistent lock state|DEBUG_LOCKS_WARN_ON|turning off the locking correctness validator"
    r"|suspected memory leak|unreferenced object|KFENCE:|UBSAN:|list_add corruption"
    r"|list_del corruption|rcu_.*detected stalls|RCU Stall|INFO: task .* blocked"
    r"|Rust panic|panicked at)"
)
# Faults of the emulated IOMMUs (VT-d, AMD-Vi, virtio-iommu, SMMUv3).
DMA_FAULT = re.compile(
    r"(DMAR: \[DMA (Read|Write)|DMAR: DRHD: handling fault|AMD-Vi: Event logged"
    r"|virtio_iommu.*fault|arm-smmu-v3.*event|F_TRANSLATION)"
)
EXPECT_BEGIN = "ioasid-test: expect-dma-fault begin"
EXPECT_END = "ioasid-test: expect-dma-fault end"
INJECT_BEGIN = "ioasid-test: fault-injection begin"
INJECT_END = "ioasid-test: fault-injection end"
# The report of an allocation that failed, which a stack trace follows.
ALLOC_FAILURE = re.compile(r"(page allocation failure:|vmalloc error:|FAULT_INJECTION: forcing a failure)")
# The start of any other report: its stack trace is not excused.
OTHER_REPORT = re.compile(r"(cut here|WARNING:|BUG:|Oops|general protection|Kernel panic|lockdep|"
                          r"possible (circular|recursive) locking|inconsistent lock state|"
                          r"unreferenced object|KFENCE:|UBSAN:|panicked at|Rust panic)")
# The stack-trace header of a report (x86: "Call Trace:", arm64: "Call trace:").
CALL_TRACE = re.compile(r"Call [Tt]race:")

TAP = re.compile(r"^(\s*)(not ok|ok)\s+(\d+|-)\s*(?:-\s*)?(.*?)\s*$")
BEGIN = re.compile(r"^IOASID-BEGIN (\S+) (.+?)\s*$")
END = re.compile(r"^IOASID-END (\S+) (.+?) rc=(-?\d+)\s*$")


def read(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace").replace("\r", "").splitlines()
    except FileNotFoundError:
        return []


def main():
    logdir, label, results_path = sys.argv[1:4]
    results = []

    def record(ok, name, detail=None):
        results.append(("PASS" if ok else "FAIL", f"[{label}] {name}"))
        if not ok and detail:
            for line in detail[:40]:
                print(f"    | {line}")
            if len(detail) > 40:
                print(f"    | ... {len(detail) - 40} more lines in {logdir}")

    tests = read(os.path.join(logdir, "tests.log"))
    console = read(os.path.join(logdir, "console.log"))

    # --- the test channel --------------------------------------------------
    block = None  # (kind, name, lines)
    for line in tests:
        m = BEGIN.match(line)
        if m:
            if block:
                finish_block(block, None, record)
            block = (m.group(1), m.group(2), [])
            continue
        m = END.match(line)
        if m and block:
            finish_block(block, int(m.group(3)), record)
            block = None
            continue
        if block:
            block[2].append(line)
    if block:
        finish_block(block, None, record)

    # --- the VM as a whole -------------------------------------------------
    status = {}
    for line in read(os.path.join(logdir, "vm.status")):
        for kv in line.split():
            k, _, v = kv.partition("=")
            status[k] = v
    done = any(line.startswith("IOASID-VM: done") for line in tests)
    timed_out = status.get("qemu_rc") in ("124", "137")
    detail = []
    if timed_out:
        detail.append(f"the VM was killed after {status.get('timeout')} s")
    if not done:
        detail.append("the guest never reported that it finished; last kernel log lines:")
        detail.extend(console[-25:])
    record(done and not timed_out, "vm: finished within the timeout", detail)

    # --- the kernel log ----------------------------------------------------
    bad = []
    expecting = False
    injecting = False
    # Inside a fault-injection window: the last report begun was an allocation failure's.
    alloc_report = False
    for i, line in enumerate(console):
        if EXPECT_BEGIN in line:
            expecting = True
            continue
        if EXPECT_END in line:
            expecting = False
            continue
        if INJECT_BEGIN in line:
            injecting = True
            continue
        if INJECT_END in line:
            injecting = False
            alloc_report = False
            continue
        if injecting:
            if ALLOC_FAILURE.search(line):
                alloc_report = True
                continue
            if OTHER_REPORT.search(line):
                alloc_report = False
            elif alloc_report and CALL_TRACE.search(line):
                # The stack trace of an injected allocation failure: expected.
                alloc_report = False
                continue
        if BAD.search(line) or (DMA_FAULT.search(line) and not expecting):
            # Show the line with a little context.
            bad.append(f"console.log:{i + 1}: {line}")
    record(not bad and bool(console), "kernel log: no oops/BUG/WARNING/lockdep/kmemleak/KFENCE/UBSAN/unexpected DMA fault",
           bad or ["console.log is empty"])

    with open(results_path, "a") as f:
        for verdict, name in results:
            f.write(f"{verdict} {name}\n")
    for verdict, name in results:
        print(f"{verdict} {name}")


def finish_block(block, rc, record):
    kind, name, lines = block
    cases = 0
    failed = False
    for line in lines:
        m = TAP.match(line)
        if not m:
            continue
        indent, verdict, _, desc = m.groups()
        if kind == "kunit" and not indent and desc.split(" ")[0] == name:
            continue  # the suite's own summary line
        skip = re.search(r"#\s*SKIP", desc, re.I)
        desc = re.sub(r"\s*#.*$", "", desc)
        cases += 1
        if skip:
            continue
        ok = verdict == "ok"
        failed |= not ok
        record(ok, f"{kind} {name}: {desc}", None if ok else context(lines, line))
    if rc is None:
        record(False, f"{kind} {name}: finished", ["no end marker: the program or the VM died"] + lines[-20:])
    elif rc != 0 and not failed:
        record(False, f"{kind} {name}: exit status", [f"exited with {rc} without reporting a failed test"] + lines[-20:])
    elif cases == 0:
        record(False, f"{kind} {name}: reported tests", ["no test results in this block"] + lines[-20:])


def context(lines, line):
    """The harness's diagnostics before a failed test line."""
    i = lines.index(line)
    start = i
    while start > 0 and lines[start - 1].lstrip().startswith("#"):
        start -= 1
    return lines[max(start, i - 30):i + 1]


if __name__ == "__main__":
    main()
