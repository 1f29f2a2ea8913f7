#!/usr/bin/env python3
# Load helpers for bench/turn.sh, standard library only:
#   flood HOST PORT REQUESTS SOURCES   unauthenticated Allocate requests from many 127.x.y.z
#                                      source addresses (what a spoofed flood costs a server)
#   hold HOST PORT USER PASS COUNT READY_FILE SECONDS
#                                      COUNT authenticated UDP allocations, refreshed every
#                                      60 s, held until SIGTERM or SECONDS pass; writes the
#                                      number held to READY_FILE once they are all up
import hashlib
import hmac
import os
import select
import signal
import socket
import struct
import sys
import time

MAGIC = 0x2112A442
ALLOCATE, REFRESH = 0x0003, 0x0004
USERNAME, MI, LIFETIME, REALM, NONCE, TRANSPORT = 0x0006, 0x0008, 0x000D, 0x0014, 0x0015, 0x0019


def attr(t, v):
    pad = (4 - len(v) % 4) % 4
    return struct.pack("!HH", t, len(v)) + v + b"\0" * pad


def message(method, attrs, key=None):
    tid = os.urandom(12)
    body = b"".join(attr(t, v) for t, v in attrs)
    if key is None:
        return struct.pack("!HHI", method, len(body), MAGIC) + tid + body
    # MESSAGE-INTEGRITY covers the header with the length including itself (24 bytes).
    head = struct.pack("!HHI", method, len(body) + 24, MAGIC) + tid
    mac = hmac.new(key, head + body, hashlib.sha1).digest()
    return head + body + attr(MI, mac)


def attrs_of(msg):
    out, i = {}, 20
    while i + 4 <= len(msg):
        t, n = struct.unpack_from("!HH", msg, i)
        out.setdefault(t, msg[i + 4 : i + 4 + n])
        i += 4 + n + (4 - n % 4) % 4
    return out


def flood(host, port, requests, sources):
    req = message(ALLOCATE, [(TRANSPORT, b"\x11\0\0\0")])
    per = max(1, requests // sources)
    sent = answered = 0
    deadline = time.time() + 120
    for i in range(sources):
        if time.time() > deadline:
            break
        src = "127.%d.%d.%d" % (1 + (i >> 16) % 250, (i >> 8) & 255, 1 + (i & 255) % 254)
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.bind((src, 0))
        except OSError:
            s.close()
            continue
        for _ in range(per):
            # A new transaction id each time, as a flood would.
            s.sendto(req[:8] + os.urandom(12) + req[20:], (host, port))
            sent += 1
        end = time.time() + 0.05
        got = 0
        while got < per and time.time() < end:
            r, _, _ = select.select([s], [], [], max(0, end - time.time()))
            if not r:
                break
            s.recv(2048)
            got += 1
        answered += got
        s.close()
    print("flood sent %d answered %d sources %d" % (sent, answered, sources))


def allocate(s, addr, user, password):
    s.sendto(message(ALLOCATE, [(TRANSPORT, b"\x11\0\0\0")]), addr)
    a = attrs_of(s.recv(2048))
    realm, nonce = a[REALM], a[NONCE]
    key = hashlib.md5(b"%s:%s:%s" % (user.encode(), realm, password.encode())).digest()
    base = [(USERNAME, user.encode()), (REALM, realm), (NONCE, nonce)]
    s.sendto(message(ALLOCATE, [(TRANSPORT, b"\x11\0\0\0")] + base, key), addr)
    r = s.recv(2048)
    if struct.unpack_from("!H", r)[0] != 0x0103:
        raise OSError("allocate refused")
    return key, base


def hold(host, port, user, password, count, ready_file, seconds):
    addr = (host, port)
    stop = [False]
    signal.signal(signal.SIGTERM, lambda *_: stop.__setitem__(0, True))
    held = []
    for _ in range(count):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        s.settimeout(2)
        try:
            held.append((s, *allocate(s, addr, user, password)))
        except (OSError, KeyError):
            s.close()
    with open(ready_file, "w") as f:
        f.write("%d\n" % len(held))
    end = time.time() + seconds
    last = time.time()
    while not stop[0] and time.time() < end:
        time.sleep(0.2)
        if time.time() - last > 60:
            last = time.time()
            for s, key, base in held:
                s.sendto(message(REFRESH, [(LIFETIME, struct.pack("!I", 600))] + base, key), addr)
                try:
                    s.recv(2048)
                except OSError:
                    pass
    for s, key, base in held:
        s.sendto(message(REFRESH, [(LIFETIME, struct.pack("!I", 0))] + base, key), addr)
        s.close()


if __name__ == "__main__":
    cmd, a = sys.argv[1], sys.argv[2:]
    if cmd == "flood":
        flood(a[0], int(a[1]), int(a[2]), int(a[3]))
    elif cmd == "hold":
        hold(a[0], int(a[1]), a[2], a[3], int(a[4]), a[5], float(a[6]))
    else:
        sys.exit("usage: turn_client.py flood|hold ...")
