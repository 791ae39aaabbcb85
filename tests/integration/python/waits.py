"""Off-CPU Python workload: nap_long and nap_short sleep 6 and 3 ms in turn under a recursion of DEPTH
frames, until the deadline (argv[1] seconds). Prints its pid first; at the end writes the nanoseconds
each nap took in all (its own measure, oversleeping included) to argv[2]."""
import os
import sys
import time

DEPTH = 3
took = {"nap_long": 0, "nap_short": 0}


def nap_long():
    t = time.monotonic_ns()
    time.sleep(0.006)
    took["nap_long"] += time.monotonic_ns() - t


def nap_short():
    t = time.monotonic_ns()
    time.sleep(0.003)
    took["nap_short"] += time.monotonic_ns() - t


def recurse(depth):
    if depth > 0:
        return recurse(depth - 1)
    nap_long()
    nap_short()


def main():
    deadline = time.monotonic() + float(sys.argv[1])
    print("waits.py pid=%d" % os.getpid(), flush=True)
    while time.monotonic() < deadline:
        recurse(DEPTH)
    with open(sys.argv[2], "w") as f:
        f.write("%d %d\n" % (took["nap_long"], took["nap_short"]))


main()
