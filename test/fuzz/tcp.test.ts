/**
 * Fuzz target: TCP segments with random flags, options, sequence and acknowledgment
 * numbers, windows and payloads, injected as if from the peer into a live connection
 * held in each state (SYN-SENT, SYN-RECEIVED, ESTABLISHED, FIN-WAIT-1/2, CLOSE-WAIT,
 * CLOSING, LAST-ACK, TIME-WAIT) between two netstack Interfaces on a virtual clock.
 * Injected payload bytes are the ones the real peer sends at that position (an off-path
 * attacker who guesses the window can always add data; what must hold is that nothing
 * the stack does with these segments corrupts or hangs the connection). Invariants:
 * - nothing throws;
 * - each side only ever reads a prefix of what the other sent;
 * - the connection either completes (both ends close without error, every byte
 *   delivered exactly) or ends with an error — never hangs: both stacks end with no
 *   connection and no timer, and one 'tcp-closed' per connection.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Interface } from '../../src/netstack/interface.js';
import type { TcpConnection, TcpListener } from '../../src/netstack/types.js';
import { SeededRng } from '../../src/util/rng.js';
import { mustParseIp } from '../../src/util/ip.js';
import { buildIPv4, buildTcp, PROTO, type TcpFlagName } from '../harness/packets.js';
import { budget, check } from './lib.js';

const A = mustParseIp('10.0.0.1');
const B = mustParseIp('10.0.0.2');
const PORT = 80;

/** Each side's bytes: position i of the stream is pat(side, i), so any segment's payload is predictable. */
function pat(side: 'a' | 'b', i: number): number {
  return (Math.imul(i >>> 0, 2654435761) + (side === 'a' ? 0 : 0x9e3779b9)) >>> 24;
}

type Target = 'SYN-SENT' | 'SYN-RECEIVED' | 'ESTABLISHED' | 'FIN-WAIT-1' | 'FIN-WAIT-2' | 'LAST-ACK' | 'CLOSING' | 'TIME-WAIT';

interface Inject {
  into: 'a' | 'b';
  wrongPort: boolean;
  seqOff: number;
  ackOff: number;
  flags: TcpFlagName[];
  window: number;
  options: number[][];
  payload: number;
  badChecksum: boolean;
  dataOffset: number | undefined;
  gapMs: number;
}

const optionArb = fc.oneof(
  fc.integer({ min: 0, max: 65535 }).map((m) => [2, 4, m >> 8, m & 0xff]),
  fc.integer({ min: 0, max: 255 }).map((s) => [3, 3, s]),
  fc.constant([4, 2]),
  fc.array(fc.tuple(fc.integer({ min: -70000, max: 70000 }), fc.integer({ min: 0, max: 3000 })), { minLength: 1, maxLength: 4 }).map((bl) => [5, 2 + bl.length * 8, ...bl.flatMap(([l, n]) => [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff].map((_, k) => (k < 4 ? l : l + n)).flatMap(() => [])), ...bl.flatMap(([l, n]) => [...u32(l), ...u32(l + n)])]),
  fc.tuple(fc.nat(), fc.nat()).map(([v, e]) => [8, 10, ...u32(v), ...u32(e)]),
  fc.constantFrom([1], [0], [2, 0], [2, 1], [99, 2], [99, 40], [8, 9, 1, 2, 3, 4, 5, 6, 7], [5, 3, 0]),
);
function u32(v: number): number[] {
  return [(v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff];
}

const offArb = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(0, 0, 0, 1, -1, 100, -100, 1000, -1000, 65535, 0x40000000, 0x80000000, -0x80000000) },
  { weight: 2, arbitrary: fc.integer({ min: -5000, max: 5000 }) },
  { weight: 1, arbitrary: fc.nat() },
);

const injectArb: fc.Arbitrary<Inject> = fc.record({
  into: fc.constantFrom('a' as const, 'b' as const),
  wrongPort: fc.constantFrom(false, false, false, false, true),
  seqOff: offArb,
  ackOff: offArb,
  flags: fc.oneof(fc.constant(['ACK'] as TcpFlagName[]), fc.subarray(['FIN', 'SYN', 'RST', 'PSH', 'ACK', 'URG'] as TcpFlagName[])),
  window: fc.constantFrom(0, 1, 512, 65535, 65535, 65535),
  options: fc.array(optionArb.map((o) => [...o]), { maxLength: 3 }),
  payload: fc.constantFrom(0, 0, 0, 1, 10, 536, 1400),
  badChecksum: fc.constantFrom(false, false, false, false, false, true),
  dataOffset: fc.constantFrom(undefined, undefined, undefined, undefined, undefined, 16, 64),
  gapMs: fc.constantFrom(0, 0, 0, 1, 50, 300, 3000),
});

class World {
  readonly a = new Interface({ addresses: ['10.0.0.1/24'], rng: new SeededRng(41) });
  readonly b = new Interface({ addresses: ['10.0.0.2/24'], rng: new SeededRng(42) });
  now = 0;
  hold = { a: false, b: false };
  held: { from: 'a' | 'b'; p: Uint8Array }[] = [];
  listener: TcpListener = this.b.tcp.listen({ port: PORT });
  ca: TcpConnection | undefined;
  cb: TcpConnection | undefined;
  sent = { a: 0, b: 0 };
  want: { a: number; b: number };
  recv = { a: 0, b: 0 }; // bytes read by a (from b) and by b (from a)
  closed = { a: 0, b: 0 };
  shut = { a: false, b: false };
  shutWhenDone = { a: false, b: false };
  extraConns: TcpConnection[] = [];
  mayEndEarly = false;

  constructor(dataA: number, dataB: number) {
    this.want = { a: dataA, b: dataB };
  }

  private traced = 0;
  private deliver(from: 'a' | 'b', p: Uint8Array): void {
    if (process.env.WGNET_FUZZ_TRACE && this.traced++ < 40) {
      const t = p.subarray((p[0]! & 15) * 4);
      const dv = new DataView(t.buffer, t.byteOffset);
      const fl = ['FIN', 'SYN', 'RST', 'PSH', 'ACK', 'URG'].filter((_, i) => t[13]! & (1 << i)).join('|');
      console.log(`${this.now} ${from}->${from === 'a' ? 'b' : 'a'} ${dv.getUint16(0)}>${dv.getUint16(2)} ${fl} seq=${dv.getUint32(4)} ack=${dv.getUint32(8)} len=${t.length - (t[12]! >> 4) * 4}`);
    }
    (from === 'a' ? this.b : this.a).handleInput(this.now, p.slice());
  }

  pump(): void {
    for (let round = 0; round < 10_000; round++) {
      let any = false;
      for (const from of ['a', 'b'] as const) {
        const iface = from === 'a' ? this.a : this.b;
        for (let p = iface.pollTransmit(this.now); p; p = iface.pollTransmit(this.now)) {
          any = true;
          if (this.hold[from]) this.held.push({ from, p: p.slice() });
          else this.deliver(from, p);
        }
      }
      any = this.app() || any;
      if (!any) return;
    }
    throw new Error('pump did not settle');
  }

  releaseHeld(): void {
    const h = this.held;
    this.held = [];
    for (const x of h) this.deliver(x.from, x.p);
  }

  /** The applications: write their stream, read and check the other's, shut down when told. */
  app(): boolean {
    let progress = false;
    for (let ev = this.a.pollEvent(); ev; ev = this.a.pollEvent()) {
      progress = true;
      if (ev.type === 'tcp-closed' && ev.conn === this.ca) this.closed.a++;
    }
    for (let ev = this.b.pollEvent(); ev; ev = this.b.pollEvent()) {
      progress = true;
      if (ev.type === 'tcp-accept') {
        for (let c = this.listener.accept(); c; c = this.listener.accept()) {
          if (!this.cb) this.cb = c;
          else {
            this.extraConns.push(c);
            c.abort(this.now); // a second connection made by injected segments: not ours
          }
        }
      }
      if (ev.type === 'tcp-closed' && ev.conn === this.cb) this.closed.b++;
    }
    for (const side of ['a', 'b'] as const) {
      const c = side === 'a' ? this.ca : this.cb;
      if (!c || c.state === 'CLOSED' || c.state === 'SYN-SENT' || c.state === 'SYN-RECEIVED') continue;
      if (this.sent[side] < this.want[side] && !this.shut[side]) {
        const n = Math.min(c.sendSpace, this.want[side] - this.sent[side], 16384);
        if (n > 0) {
          const buf = new Uint8Array(n);
          for (let i = 0; i < n; i++) buf[i] = pat(side, this.sent[side] + i);
          const took = c.send(this.now, buf);
          this.sent[side] += took;
          if (took > 0) progress = true;
        }
      }
      if (this.shutWhenDone[side] && !this.shut[side] && this.sent[side] === this.want[side]) {
        this.shut[side] = true;
        c.shutdown(this.now);
        progress = true;
      }
      const other = side === 'a' ? 'b' : 'a';
      for (let d = c.recv(); d; d = c.recv()) {
        progress = true;
        for (let i = 0; i < d.length; i++) {
          if (d[i] !== pat(other, this.recv[side] + i)) throw new Error(`${side} read a wrong byte at stream position ${this.recv[side] + i}`);
        }
        this.recv[side] += d.length;
      }
    }
    return progress;
  }

  /** Runs on the virtual clock until `done()` or `until`. */
  run(until: number, done: () => boolean = () => false): void {
    for (let step = 0; step < 1_000_000; step++) {
      this.pump();
      if (done()) return;
      const next = Math.min(this.a.pollTimeout()?.at ?? Infinity, this.b.pollTimeout()?.at ?? Infinity);
      if (next > until) {
        this.now = Math.max(this.now, Math.min(until, this.now));
        return;
      }
      this.now = Math.max(this.now, next);
      this.a.handleTimeout(this.now);
      this.b.handleTimeout(this.now);
    }
    throw new Error('run did not settle');
  }

  connect(): void {
    this.ca = this.a.tcp.connect(this.now, { remoteAddr: B, remotePort: PORT });
  }

  /** b's connection to a, accepted or not yet (SYN-RECEIVED). */
  connB(): { irs: number; rcvNxt: number; nxt: number; localPort: number; remotePort: number; state: string } | undefined {
    if (this.cb) return this.cb as unknown as ReturnType<World['connB']>;
    for (const c of (this.b.tcp as unknown as { conns: Map<string, unknown> }).conns.values()) return c as ReturnType<World['connB']>;
    return undefined;
  }
}

/** Puts the connection in `target` (as far as it gets), with packets held where the state needs it. */
function driveTo(w: World, target: Target): void {
  const st = (c: TcpConnection | undefined): string => c?.state ?? 'none';
  switch (target) {
    case 'SYN-SENT':
      w.hold.a = true;
      w.connect();
      w.pump();
      return;
    case 'SYN-RECEIVED':
      w.hold.b = true;
      w.connect();
      w.pump();
      return;
    case 'ESTABLISHED':
      w.connect();
      w.run(w.now + 30, () => st(w.ca) === 'ESTABLISHED' && w.cb !== undefined && w.sent.a > 0);
      return;
    case 'FIN-WAIT-1':
      w.connect();
      w.run(w.now + 1000, () => w.cb !== undefined);
      w.hold.a = true;
      w.shutWhenDone.a = true;
      w.run(w.now + 10, () => st(w.ca) === 'FIN-WAIT-1');
      return;
    case 'FIN-WAIT-2':
      w.connect();
      w.shutWhenDone.a = true;
      w.run(w.now + 5000, () => st(w.ca) === 'FIN-WAIT-2');
      return;
    case 'LAST-ACK':
    case 'TIME-WAIT':
      w.connect();
      w.shutWhenDone.a = true;
      w.run(w.now + 5000, () => st(w.ca) === 'FIN-WAIT-2');
      if (target === 'LAST-ACK') w.hold.a = true;
      w.shutWhenDone.b = true;
      w.run(w.now + 5000, () => st(w.cb) === 'LAST-ACK' || st(w.ca) === 'TIME-WAIT');
      return;
    case 'CLOSING':
      w.connect();
      w.run(w.now + 5000, () => w.cb !== undefined && w.recv.a === w.want.b && w.recv.b === w.want.a && w.sent.a === w.want.a && w.sent.b === w.want.b);
      w.hold.a = w.hold.b = true;
      w.shutWhenDone.a = w.shutWhenDone.b = true;
      w.pump();
      w.releaseHeld(); // the two FINs cross; the ACKs of them are held
      w.pump();
      return;
  }
}

function inject(w: World, x: Inject): void {
  const into = x.into;
  const victim = into === 'a' ? w.ca : w.connB();
  const v = victim as unknown as { irs: number; rcvNxt: number; nxt: number; localPort: number; remotePort: number; state: string } | undefined;
  const fromSide = into === 'a' ? 'b' : 'a';
  const src = into === 'a' ? B : A;
  const dst = into === 'a' ? A : B;
  const localPort = v?.localPort ?? (into === 'a' ? 40000 : PORT);
  const remotePort = v?.remotePort ?? (into === 'a' ? PORT : 40000);
  const seq = ((v?.rcvNxt ?? 1000) + x.seqOff) >>> 0;
  const ack = ((v?.nxt ?? 2000) + x.ackOff) >>> 0;
  // The payload is what the real sender has at these stream positions (relative to the ISN the victim knows,
  // or to the one this segment sets when it is a SYN).
  const synHere = x.flags.includes('SYN');
  const base = synHere || !v || v.state === 'SYN-SENT' ? seq + 1 : (v.irs + 1) >>> 0;
  const dataSeq = synHere ? seq + 1 : seq;
  // Only bytes the real sender has (its stream ends at want[fromSide]): beyond that an attacker's data is
  // simply more data, which no check could tell from the sender's.
  const pos0 = (dataSeq - base) >>> 0;
  const payload = new Uint8Array(Math.max(0, Math.min(x.payload, w.want[fromSide] - pos0)));
  for (let i = 0; i < payload.length; i++) payload[i] = pat(fromSide, pos0 + i);
  // A spoofed FIN, RST or SYN that lands ends (or restarts) the stream early: a legitimate way to lose
  // the rest, so the run is then only held to "a prefix, and no hang".
  if (x.flags.some((f) => f === 'FIN' || f === 'RST' || f === 'SYN') && !x.badChecksum && !x.wrongPort) w.mayEndEarly = true;
  const seg = buildTcp(src, dst, {
    srcPort: x.wrongPort ? remotePort ^ 1 : remotePort,
    dstPort: localPort,
    seq,
    ack,
    flags: x.flags,
    window: x.window,
    options: x.options.flat().slice(0, 40), // at most 40 bytes fit the data offset; more would spill into the payload
    payload,
    badChecksum: x.badChecksum,
    dataOffset: x.dataOffset,
  });
  const iface = into === 'a' ? w.a : w.b;
  assert.doesNotThrow(() => iface.handleInput(w.now, buildIPv4(src, dst, PROTO.TCP, seg)), `segment into ${into}`);
  w.pump();
  if (x.gapMs) w.run(w.now + x.gapMs);
}

const SEEN = new Map<string, number>();

function scenario(target: Target, dataA: number, dataB: number, injects: Inject[]): void {
  const w = new World(dataA, dataB);
  driveTo(w, target);
  const reached = `${w.ca?.state ?? '-'}/${w.connB()?.state ?? '-'}`;
  SEEN.set(`${target} -> ${reached}`, (SEEN.get(`${target} -> ${reached}`) ?? 0) + 1);
  for (const x of injects) inject(w, x);
  // Let it finish: release what was held, both sides send the rest and close.
  w.hold.a = w.hold.b = false;
  w.releaseHeld();
  w.shutWhenDone.a = w.shutWhenDone.b = true;
  w.run(w.now + 4 * 3600_000, () => w.a.tcp.pollTimeout() === undefined && w.b.tcp.pollTimeout() === undefined && w.held.length === 0);
  const what = `${target} (reached ${reached}), ${dataA}/${dataB} bytes, ${injects.length} segments`;
  const layerA = w.a.tcp as unknown as { connectionCount: number; conns: Map<string, TcpConnection> };
  const layerB = w.b.tcp as unknown as { connectionCount: number; conns: Map<string, TcpConnection> };
  // Both stacks are idle now (no timer): a connection an injected segment desynchronized may wait
  // for ever, as it would on any stack whose application keeps it open (FIN-WAIT-2 waiting for a
  // FIN that can no longer be in its window). Its application gives up; that must free everything.
  if (layerA.connectionCount + layerB.connectionCount > 0) {
    const left = `idle, aborted: ${[...layerA.conns.values(), ...layerB.conns.values()].map((c) => c.state).join(',')}`;
    SEEN.set(left, (SEEN.get(left) ?? 0) + 1);
    for (const c of [...layerA.conns.values(), ...layerB.conns.values()]) c.abort(w.now);
    w.run(w.now + 4 * 3600_000, () => w.a.tcp.pollTimeout() === undefined && w.b.tcp.pollTimeout() === undefined && w.held.length === 0);
  }
  assert.equal(layerA.connectionCount, 0, `${what}: a still has a connection (${w.ca?.state})`);
  assert.equal(layerB.connectionCount, 0, `${what}: b still has a connection (${w.cb?.state})`);
  assert.equal(w.a.tcp.pollTimeout(), undefined, `${what}: a timer left on a`);
  assert.equal(w.b.tcp.pollTimeout(), undefined, `${what}: a timer left on b`);
  if (w.ca) assert.ok(w.closed.a <= 1, `${what}: ${w.closed.a} tcp-closed events on a`);
  if (w.cb) assert.ok(w.closed.b <= 1, `${what}: ${w.closed.b} tcp-closed events on b`);
  const clean = w.ca !== undefined && w.cb !== undefined && w.ca.error === undefined && w.cb.error === undefined && w.ca.recvEnded && w.cb.recvEnded;
  if (clean && !w.mayEndEarly) {
    assert.equal(w.recv.b, dataA, `${what}: closed without an error but b read ${w.recv.b} of ${dataA} bytes`);
    assert.equal(w.recv.a, dataB, `${what}: closed without an error but a read ${w.recv.a} of ${dataB} bytes`);
  }
  const outcome = clean ? 'complete' : `error ${w.ca?.error ?? '-'}/${w.cb?.error ?? '-'}`;
  SEEN.set(outcome, (SEEN.get(outcome) ?? 0) + 1);
}

const TARGETS: Target[] = ['SYN-SENT', 'SYN-RECEIVED', 'ESTABLISHED', 'FIN-WAIT-1', 'FIN-WAIT-2', 'LAST-ACK', 'CLOSING', 'TIME-WAIT'];

describe('fuzz: TCP segments against a live connection in every state', () => {
  // Replays one case as fast-check printed it: WGNET_FUZZ_CASE='["SYN-SENT",0,0,[{...}]]' (undefined as null).
  if (process.env.WGNET_FUZZ_CASE) {
    test('the case in WGNET_FUZZ_CASE', () => {
      const [t, da, db, xs] = JSON.parse(process.env.WGNET_FUZZ_CASE!.replace(/undefined/g, 'null')) as [Target, number, number, Inject[]];
      scenario(t, da, db, xs.map((x) => ({ ...x, dataOffset: x.dataOffset ?? undefined })));
    });
  }

  // Found by this target ("never hangs"): one spoofed in-window data segment desynchronized the two
  // ends, which then answered each other's ACK (out of window / acking unsent data) for ever, in the
  // same instant: an ACK storm. Then the same with SYN-ACKs after a spoofed SYN in SYN-SENT.
  test('regression: no ACK storm after spoofed in-window data, no SYN-ACK storm after a spoofed SYN', () => {
    const x: Inject = { into: 'a', wrongPort: false, seqOff: 0, ackOff: 0, flags: ['ACK'], window: 0, options: [], payload: 536, badChecksum: false, dataOffset: undefined, gapMs: 0 };
    scenario('FIN-WAIT-1', 0, 0, [x]);
    scenario('ESTABLISHED', 20_000, 1000, [{ ...x, payload: 10 }]);
    scenario('SYN-SENT', 0, 0, [{ ...x, flags: ['SYN'], payload: 0 }, { ...x, flags: [], payload: 0 }]);
    // A spoofed timestamp moved TS.Recent on both ends: each real ACK then failed PAWS, and was answered by one that did too.
    const ts = { ...x, window: 0, payload: 0, options: [[8, 10, 0, 0, 0, 1, 0, 0, 0, 0]] };
    scenario('FIN-WAIT-1', 0, 0, [ts, { ...ts, into: 'b' }, { ...x, flags: [], payload: 0 }]);
  });

  test('no injected segment at all: every scenario completes', () => {
    for (const t of TARGETS) scenario(t, 5000, 3000, []);
    assert.ok((SEEN.get('complete') ?? 0) >= TARGETS.length);
  });

  test('random flags, options, sequence and ack numbers: a prefix of the real bytes, then completion or an error, never a hang', () => {
    check(
      fc.property(fc.constantFrom(...TARGETS), fc.constantFrom(0, 1, 1000, 20_000, 100_000), fc.constantFrom(0, 1, 1000, 20_000), fc.array(injectArb, { minLength: 1, maxLength: 12 }), (target, dataA, dataB, injects) =>
        scenario(target, dataA, dataB, injects),
      ),
      budget('tcp', 12000),
    );
    if (process.env.WGNET_FUZZ_STATS) console.log('states reached and outcomes:', Object.fromEntries([...SEEN].sort()));
  });
});
