#!/usr/bin/env python3
"""Prints a loopback TCP port that is free now and that the kernel never hands out on its own.

A port from bind(0) lies in the ephemeral range (net.ipv4.ip_local_port_range), and so does the
source port of every outgoing connection: between the moment it is printed and the moment a
server binds it (or binds it again after a restart), any client can take it. Ports below that
range are only ever taken by someone asking for them by number.
"""
import random
import socket

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
    print(port)
    break
else:
    raise SystemExit("free-port.py: no free port below the ephemeral range")
