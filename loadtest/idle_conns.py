#!/usr/bin/env python3
"""Open N idle keep-alive HTTP/1.1 connections, one request each, and hold them.

Used by `loadtest/run` for scenarios (f) (memory per idle connection) and
(j) (memory per idle WebSocket connection, with `--ws`).

    idle_conns.py [--ws] HOST PORT PATH COUNT

With `--ws`, the request is a WebSocket upgrade (`GET PATH` with `Upgrade:
websocket`), which must answer 101; the connection then stays open, idle.
`check` sends one text message (`idle-check`, not JSON) on every connection
and expects it echoed back in one text frame.

Protocol on stdout/stdin (line based):
  * prints `OPENED ok=<n> failed=<n> secs=<t>` once every connection has made
    one request (and got a complete 200 response) and is idle;
  * then waits for a line on stdin:
      `check`  sends one more request on every open connection and prints
               `CHECKED ok=<n> failed=<n> closed_by_peer=<n> secs=<t>`;
      `exit` or EOF closes everything and exits.
"""

import base64
import os
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


def read_upgrade(sock):
    """Reads the answer to an upgrade request; returns its status."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionResetError("closed before response head")
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    if rest:
        raise ValueError("unexpected bytes after the 101 head")
    return int(head.split(b"\r\n")[0].split()[1])


CHECK_MESSAGE = b"idle-check"


def ws_frame(payload):
    """One masked text frame (client to server), payload under 126 bytes."""
    mask = os.urandom(4)
    return bytes([0x81, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def read_ws_echo(sock):
    """Reads one unmasked frame from the server; returns (opcode, payload)."""
    buf = b""
    while True:
        if len(buf) >= 2:
            n = buf[1] & 0x7F
            hl = 2 if n < 126 else (4 if n == 126 else 10)
            if len(buf) >= hl:
                if n == 126:
                    n = int.from_bytes(buf[2:4], "big")
                elif n == 127:
                    n = int.from_bytes(buf[2:10], "big")
                if len(buf) >= hl + n:
                    return buf[0] & 0x0F, buf[hl:hl + n]
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionResetError("closed before the echo")
        buf += chunk


def main():
    args = sys.argv[1:]
    ws = args[:1] == ["--ws"]
    if ws:
        args = args[1:]
    host, port, path, count = args[0], int(args[1]), args[2], int(args[3])
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
            if ws:
                key = base64.b64encode(os.urandom(16)).decode()
                s.sendall(("GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                           "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: %s\r\n\r\n"
                           % (path, host, port, key)).encode())
                status = read_upgrade(s)
                if status != 101:
                    raise ValueError("status %d" % status)
            else:
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
                    if ws:
                        s.sendall(ws_frame(CHECK_MESSAGE))
                        opcode, payload = read_ws_echo(s)
                        good = opcode == 1 and payload == CHECK_MESSAGE
                    else:
                        s.sendall(request)
                        status, _ = read_response(s)
                        good = status == 200
                    if good:
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
