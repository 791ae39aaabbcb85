"""Known-weights Python workload: leaf_a, leaf_b and leaf_c do 5:3:2 of the same loop under a
recursion of DEPTH frames, in the main thread and a second one, until the deadline (argv[1] seconds)."""
import os
import sys
import threading
import time

DEPTH = 6
UNIT = 2000


def leaf_a():
    x = 0
    for i in range(5 * UNIT):
        x += i
    return x


def leaf_b():
    x = 0
    for i in range(3 * UNIT):
        x += i
    return x


def leaf_c():
    x = 0
    for i in range(2 * UNIT):
        x += i
    return x


def recurse(depth):
    if depth > 0:
        return recurse(depth - 1)
    return leaf_a() + leaf_b() + leaf_c()


def loop(deadline):
    while time.monotonic() < deadline:
        recurse(DEPTH)


def main():
    deadline = time.monotonic() + float(sys.argv[1])
    t = threading.Thread(target=loop, args=(deadline,), name="second")
    t.start()
    print("weights.py pid=%d tids=%d,%d" % (os.getpid(), threading.get_native_id(), t.native_id), flush=True)
    loop(deadline)
    t.join()


main()
