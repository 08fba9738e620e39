#!/usr/bin/env python3
"""Small servers the interop tests run inside the network namespace, behind wireguard-go.

sink  HOST PORT       TCP: read until EOF, answer the sha256 hex digest, close.
udpecho HOST PORT     UDP: echo every datagram back to its sender.
dns   HOST PORT       UDP DNS: A/AAAA answers from a fixed table, NXDOMAIN otherwise.
"""
import hashlib, socket, struct, sys, threading

def sink(host, port):
    fam = socket.AF_INET6 if ':' in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, port)); s.listen(16)
    print('ready', flush=True)
    while True:
        c, _ = s.accept()
        threading.Thread(target=_sink_one, args=(c,), daemon=True).start()

def _sink_one(c):
    h = hashlib.sha256(); n = 0
    while True:
        b = c.recv(1 << 16)
        if not b: break
        h.update(b); n += len(b)
    c.sendall(f'{h.hexdigest()} {n}\n'.encode()); c.close()

def udpecho(host, port):
    fam = socket.AF_INET6 if ':' in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_DGRAM); s.bind((host, port))
    print('ready', flush=True)
    while True:
        b, a = s.recvfrom(65535); s.sendto(b, a)

TABLE = {
    'wg.test.': [('A', '10.77.0.99'), ('AAAA', 'fd77::99')],
    'alias.wg.test.': [('CNAME', 'wg.test.')],
    'v4only.wg.test.': [('A', '10.77.0.42')],
}

def _name(msg, off):
    labels = []
    while True:
        l = msg[off]
        if l & 0xC0 == 0xC0:
            ptr = struct.unpack('!H', msg[off:off+2])[0] & 0x3FFF
            labels.append(_name(msg, ptr)[0].rstrip('.')); off += 2; break
        off += 1
        if l == 0: break
        labels.append(msg[off:off+l].decode()); off += l
    return '.'.join(x for x in labels if x) + '.', off

def _enc(name):
    return b''.join(bytes([len(p)]) + p.encode() for p in name.rstrip('.').split('.')) + b'\0'

def dns(host, port):
    fam = socket.AF_INET6 if ':' in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_DGRAM); s.bind((host, port))
    print('ready', flush=True)
    while True:
        q, a = s.recvfrom(4096)
        try:
            qid, flags, qd = struct.unpack('!HHH', q[:6])
            name, off = _name(q, 12)
            qtype, qclass = struct.unpack('!HH', q[off:off+4])
        except Exception:
            continue
        question = q[12:off+4]
        answers = []
        n = name.lower()
        for _ in range(8):
            recs = TABLE.get(n, [])
            cn = [r for r in recs if r[0] == 'CNAME']
            if cn and qtype != 5:
                answers.append(_enc(n) + struct.pack('!HHIH', 5, 1, 60, len(_enc(cn[0][1]))) + _enc(cn[0][1]))
                n = cn[0][1]; continue
            for t, v in recs:
                if t == 'A' and qtype == 1:
                    answers.append(_enc(n) + struct.pack('!HHIH', 1, 1, 60, 4) + socket.inet_aton(v))
                if t == 'AAAA' and qtype == 28:
                    answers.append(_enc(n) + struct.pack('!HHIH', 28, 1, 60, 16) + socket.inet_pton(socket.AF_INET6, v))
            break
        rcode = 0 if (name.lower() in TABLE) else 3
        hdr = struct.pack('!HHHHHH', qid, 0x8180 | rcode, 1, len(answers), 0, 0)
        s.sendto(hdr + question + b''.join(answers), a)

if __name__ == '__main__':
    {'sink': sink, 'udpecho': udpecho, 'dns': dns}[sys.argv[1]](sys.argv[2], int(sys.argv[3]))
