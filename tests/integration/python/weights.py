"""Known-weights Python workload: leaf_a, leaf_b and leaf_c do 5:3:2 of the same loop under a
recursion of DEPTH frames, in the main thread and a second one, until the deadline (argv[1] seconds).
Each round's length is random (0.5x to 1.5x UNIT, the same for the three leaves): a fixed length makes
the rounds periodic, and 3.13's round of about 1.33 ms is two thirds of 499 Hz's period, so samples
fell on the same two phases and skewed a share by 5 points."""
import os
import random
import sys
import threading
import time

DEPTH = 6
UNIT = 2000


def leaf_a(unit):
    x = 0
    for i in range(5 * unit):
        x += i
    return x


def leaf_b(unit):
    x = 0
    for i in range(3 * unit):
        x += i
    return x


def leaf_c(unit):
    x = 0
    for i in range(2 * unit):
        x += i
    return x


def recurse(depth, unit):
    if depth > 0:
        return recurse(depth - 1, unit)
    return leaf_a(unit) + leaf_b(unit) + leaf_c(unit)


def loop(deadline):
    rounds = random.Random()
    while time.monotonic() < deadline:
        recurse(DEPTH, rounds.randint(UNIT // 2, UNIT * 3 // 2))


def main():
    deadline = time.monotonic() + float(sys.argv[1])
    t = threading.Thread(target=loop, args=(deadline,), name="second")
    t.start()
    print("weights.py pid=%d tids=%d,%d" % (os.getpid(), threading.get_native_id(), t.native_id), flush=True)
    loop(deadline)
    t.join()


main()
