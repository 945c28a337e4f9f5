#!/usr/bin/env python3
"""MONITOR's log (redis-cli monitor) → the same commands as RESP, in order.

For replaying what clients sent to a Redis into a fresh one (profile.sh
replay): every client's command, in the order Redis ran them, on one
connection; the commands scripts ran ("[db lua]" lines) are left out (the
scripts run them again), and so are the ones that only make sense on their
own connection or say nothing about the data (SUBSCRIBE, CLIENT, PING,
INFO, CONFIG, MONITOR). MONITOR quotes each argument, escaping \\ \" \\n \\r
\\t \\a \\b and any other byte as \\xHH.

Usage: monitor_resp.py MONITOR_LOG > commands.resp   (count on stderr)
"""
import sys

SKIP = {b'SUBSCRIBE', b'UNSUBSCRIBE', b'PSUBSCRIBE', b'PUNSUBSCRIBE', b'CLIENT', b'PING',
        b'INFO', b'CONFIG', b'MONITOR', b'HELLO'}
ESC = {'n': b'\n', 'r': b'\r', 't': b'\t', 'a': b'\a', 'b': b'\b', '\\': b'\\', '"': b'"'}


def args(line):
    """The quoted arguments after "[db client] "."""
    i, n, out = line.index('] ') + 2, len(line), []
    while i < n:
        if line[i] != '"':
            i += 1
            continue
        i += 1
        buf = bytearray()
        while line[i] != '"':
            c = line[i]
            if c == '\\':
                d = line[i + 1]
                if d == 'x':
                    buf.append(int(line[i + 2:i + 4], 16))
                    i += 4
                    continue
                buf += ESC[d]
                i += 2
                continue
            buf += c.encode()
            i += 1
        i += 1
        out.append(bytes(buf))
    return out


def main():
    out, count = sys.stdout.buffer, 0
    with open(sys.argv[1], encoding='ascii', errors='strict') as log:
        for line in log:
            line = line.rstrip('\n')
            if '] "' not in line or ' lua] "' in line:
                continue
            a = args(line)
            if not a or a[0].upper() in SKIP:
                continue
            out.write(b'*%d\r\n' % len(a))
            for x in a:
                out.write(b'$%d\r\n%s\r\n' % (len(x), x))
            count += 1
    print(count, file=sys.stderr)


if __name__ == '__main__':
    main()
