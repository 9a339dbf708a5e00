"""Run a command and print its wall time and peak RSS as JSON (a small launcher).

Launching from this small process matters: a child's peak RSS on Linux starts from its parent's
RSS at fork time, so measuring from the (large) benchmark process would inflate every number.
"""

import json
import os
import subprocess
import sys
import time

t0 = time.perf_counter()
p = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
err = p.stderr.read()
_, status, usage = os.wait4(p.pid, 0)
print(json.dumps({"wall": time.perf_counter() - t0, "peak_mb": usage.ru_maxrss / 1024.0,
                  "code": os.waitstatus_to_exitcode(status),
                  "error": err.decode(errors="replace")[-800:]}))
