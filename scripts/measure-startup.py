#!/usr/bin/env python3
"""Measure how long `temper server start-dev` takes to accept connections, and to stop.

Usage: scripts/measure-startup.py target/release/temper
"""
import socket, subprocess, sys, time, os, tempfile, signal
binary = sys.argv[1]
def once(db):
    t = time.perf_counter()
    p = subprocess.Popen([binary, "server", "start-dev", "--db-file", db, "--port", "7411", "--log-level", "error"], stderr=subprocess.DEVNULL)
    while True:
        try:
            socket.create_connection(("127.0.0.1", 7411), timeout=0.05).close(); break
        except OSError:
            time.sleep(0.001)
    ready = time.perf_counter() - t
    t2 = time.perf_counter(); p.send_signal(signal.SIGTERM); p.wait(); stop = time.perf_counter() - t2
    return ready, stop
d = tempfile.mkdtemp()
fresh = [once(os.path.join(d, f"f{i}.sqlite")) for i in range(5)]
again = [once(os.path.join(d, "f0.sqlite")) for i in range(5)]
fmt = lambda xs: ", ".join(f"{x*1000:.0f}" for x in xs)
print("fresh store  ready ms:", fmt([r for r, _ in fresh]), "| stop ms:", fmt([s for _, s in fresh]))
print("existing     ready ms:", fmt([r for r, _ in again]), "| stop ms:", fmt([s for _, s in again]))
