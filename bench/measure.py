"""Run a command and print its wall time and peak RSS as JSON (a small launcher).

Launching from this small process matters: a child's peak RSS on Linux starts from its parent's
RSS at fork time, so measuring from the (large) benchmark process would inflate every number.

usage: measure.py [--timeout SECONDS] COMMAND...   (a command still running after the timeout is
killed with its whole process group and reported with code -9 and "timeout" as its error)
"""

import json
import os
import signal
import subprocess
import sys
import time

argv = sys.argv[1:]
timeout = None
if argv[:1] == ["--timeout"]:
    timeout, argv = float(argv[1]), argv[2:]
t0 = time.perf_counter()
p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                     start_new_session=True)
timed_out = False
try:
    _, err = p.communicate(timeout=timeout)
except subprocess.TimeoutExpired:
    timed_out = True
    os.killpg(p.pid, signal.SIGKILL)
    _, err = p.communicate()
wall = time.perf_counter() - t0
usage = os.wait4(p.pid, 0)[2] if p.returncode is None else None
peak = (usage.ru_maxrss if usage else __import__("resource").getrusage(
    __import__("resource").RUSAGE_CHILDREN).ru_maxrss) / 1024.0
print(json.dumps({"wall": wall, "peak_mb": peak,
                  "code": -9 if timed_out else p.returncode,
                  "error": f"timeout after {timeout:.0f} s" if timed_out
                  else err.decode(errors="replace")[-800:]}))
