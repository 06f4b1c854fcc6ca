#!/usr/bin/env python3
"""Open N idle keep-alive HTTP/1.1 connections, one request each, and hold them.

Used by `loadtest/run` for scenario (f) (memory per idle connection).

    idle_conns.py HOST PORT PATH COUNT

Protocol on stdout/stdin (line based):
  * prints `OPENED ok=<n> failed=<n> secs=<t>` once every connection has made
    one request (and got a complete 200 response) and is idle;
  * then waits for a line on stdin:
      `check`  sends one more request on every open connection and prints
               `CHECKED ok=<n> failed=<n> closed_by_peer=<n> secs=<t>`;
      `exit` or EOF closes everything and exits.
"""

import resource
import socket
import sys
import time


def raise_nofile(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= need:
        return
    want = need if hard == resource.RLIM_INFINITY else min(need, hard)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(want, soft), hard))
    except (ValueError, OSError):
        pass
    try:  # root may raise the hard limit too
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, need))
    except (ValueError, OSError):
        pass


def read_response(sock, buf=b""):
    """Reads one Content-Length response; returns (status, leftover) or raises."""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionResetError("closed before response head")
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionResetError("closed inside response body")
        rest += chunk
    return status, rest[length:]


def main():
    host, port, path, count = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    raise_nofile(count + 256)
    request = ("GET %s HTTP/1.1\r\nHost: %s:%d\r\n\r\n" % (path, host, port)).encode()
    conns = []
    failed = 0
    errors = {}
    t0 = time.monotonic()
    for _ in range(count):
        try:
            s = socket.create_connection((host, port), timeout=10)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.sendall(request)
            status, _ = read_response(s)
            if status != 200:
                raise ValueError("status %d" % status)
            conns.append(s)
        except (OSError, ValueError) as e:
            failed += 1
            key = type(e).__name__ + ": " + str(e)[:80]
            errors[key] = errors.get(key, 0) + 1
    print("OPENED ok=%d failed=%d secs=%.2f" % (len(conns), failed, time.monotonic() - t0), flush=True)
    for k, v in errors.items():
        print("ERROR %d x %s" % (v, k), flush=True)

    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "check":
            ok = bad = closed = 0
            t0 = time.monotonic()
            for s in conns:
                try:
                    s.sendall(request)
                    status, _ = read_response(s)
                    if status == 200:
                        ok += 1
                    else:
                        bad += 1
                except ConnectionResetError:
                    closed += 1
                except OSError:
                    bad += 1
            print(
                "CHECKED ok=%d failed=%d closed_by_peer=%d secs=%.2f"
                % (ok, bad, closed, time.monotonic() - t0),
                flush=True,
            )
        elif cmd in ("exit", ""):
            break
    for s in conns:
        try:
            s.close()
        except OSError:
            pass


if __name__ == "__main__":
    main()
