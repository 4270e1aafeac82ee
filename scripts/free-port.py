#!/usr/bin/env python3
"""Prints a loopback TCP port that is free now and that the kernel never hands out on its own.

A port from bind(0) lies in the ephemeral range (net.ipv4.ip_local_port_range), and so does the
source port of every outgoing connection: between the moment it is printed and the moment a
server binds it (or binds it again after a restart), any client can take it. Ports below that
range are only ever taken by someone asking for them by number.

Tests run side by side, and a broker stopped and restarted under chaos leaves its port free for
a moment: each port handed out is reserved for an hour by a file in
$TMPDIR/sensor-pipeline-ports, which the test harness's `broker::free_port` honours too.
"""
import os
import random
import socket
import tempfile
import time

RESERVED = os.path.join(tempfile.gettempdir(), "sensor-pipeline-ports")
HOLD_SECONDS = 3600


def reserve(port):
    os.makedirs(RESERVED, exist_ok=True)
    path = os.path.join(RESERVED, str(port))
    try:
        if time.time() - os.stat(path).st_mtime > HOLD_SECONDS:
            os.unlink(path)
    except FileNotFoundError:
        pass
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        return True
    except FileExistsError:
        return False


with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
    low = int(f.read().split()[0])
rng = random.SystemRandom()
for _ in range(1000):
    port = rng.randrange(10000, low)
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            continue
    if not reserve(port):
        continue
    print(port)
    break
else:
    raise SystemExit("free-port.py: no free port below the ephemeral range")
