/**
 * The glue of a userspace tunnel (DESIGN §1: io/tunnel): joins `wireguard/Device`
 * and `netstack/Interface` with plain IP packets, as wireguard-go joins `device`
 * and `tun/netstack`, feeds them real time and the outer UDP socket, and keeps
 * exactly one unref'd timer armed at (never after) the earliest deadline of either core.
 *
 * Everything happens in `pump()`: after each input (a datagram, an application
 * write, a timer) the cores are drained until neither has anything to say.
 * Application writes schedule a pump on a microtask, so a burst of writes in one
 * tick is handled in one pass.
 *
 * Data before handshakes (wireguard-go's separate handshake queue and workers): a datagram
 * batch is decrypted as it is read, handshake messages only queued (Device.receiveDatagram);
 * drain() serves them last, for at most HANDSHAKE_SLICE_MS per turn of the event loop, then
 * yields so the socket is read again. An established peer's packet waits at most one slice
 * behind a handshake flood, never behind the flood's backlog.
 *
 * Application code runs inside pump(): the handlers turn events into 'data', 'connection',
 * 'message' and 'handshake' events whose listeners are the user's. Node's rule for a listener
 * that throws is that the exception becomes 'uncaughtException' and the emitter carries on
 * (a net.Socket whose 'data' listener threw still reads its next chunk). An exception that
 * unwound through pump() would instead leave the other events of this pass undelivered and
 * the timer unarmed, so one faulty callback could stall every connection of the tunnel. So
 * each event is delivered on its own, an exception is caught, counted and rethrown on the
 * next tick (callbackError()), where it reaches 'uncaughtException' as Node's own would,
 * after the cores are drained and the timer is armed.
 */
import type { Device, DeviceEvent } from '../wireguard/device.js';
import type { Interface, NetEvent } from '../netstack/interface.js';
import type { Deadline, Instant } from '../util/time.js';
import { earliest } from '../util/time.js';
import type { Trace } from '../util/trace.js';
import { noTrace } from '../util/trace.js';
import { monotonicNow } from './clock.js';
import type { UdpBind } from './udp-bind.js';

/** Another sans-IO component driven by the same clock (the DNS client, for one). */
export interface TimedComponent {
  handleTimeout(now: Instant): void;
  pollTimeout(): Deadline | undefined;
}

/**
 * What sits on the plaintext side of the Device: the netstack's Interface in
 * userspace mode, a TUN device in daemon mode. Interface has this shape already.
 */
export interface PacketLayer {
  handleInput(now: Instant, packet: Uint8Array): void;
  pollTransmit(now: Instant): Uint8Array | undefined;
  handleTimeout(now: Instant): void;
  pollTimeout(): Deadline | undefined;
  pollEvent(): NetEvent | undefined;
}

export interface EngineHandlers {
  onNetEvent(ev: NetEvent): void;
  onDeviceEvent(ev: DeviceEvent): void;
}

/** Datagrams sent per turn of the event loop before yielding (see drain()). */
const BATCH = 64;
/**
 * Milliseconds of queued handshake messages served per turn of the event loop (see drain()):
 * about 4 initiations answered (0.3-0.5 ms each), or dozens of cookie replies under load.
 */
const HANDSHAKE_SLICE_MS = 2;

export class Engine<L extends PacketLayer = Interface> {
  private timer: NodeJS.Timeout | undefined;
  private timerAt = Infinity;
  private pumping = false;
  private again = false;
  private scheduled = false;
  private yielded = false;
  /** The end of this turn's slice of handshake work (see drain()); -1 when none has started. */
  private handshakeUntil = -1;
  private closed = false;
  /** Between suspend() and unsuspend() (tunnel.pause()): no pump, no timer. */
  private suspended = false;
  private readonly extra: TimedComponent[] = [];
  /** Components that see each network event before the API layer (DNS client). */
  private readonly interceptors: ((now: Instant, ev: NetEvent) => boolean)[] = [];
  handlers: EngineHandlers = { onNetEvent: () => {}, onDeviceEvent: () => {} };
  /** Exceptions thrown by application callbacks during a pump (see callbackError()). */
  callbackErrors = 0;
  /**
   * Sees every inner IP packet where it crosses between the Device and the packet layer
   * (`inbound`: from a peer), before the Device encrypts an outgoing one in place: the
   * pcap capture. Off when undefined, which costs one field test per packet.
   */
  tap: ((packet: Uint8Array, inbound: boolean) => void) | undefined = undefined;
  /**
   * Gateway mode's router: takes a packet a peer sent to another peer's address and sends it
   * on at the IP level (true), or leaves it to the netstack (false). Undefined unless enabled.
   */
  route: ((now: Instant, packet: Uint8Array) => boolean) | undefined = undefined;

  constructor(
    readonly device: Device,
    readonly iface: L,
    public bind: UdpBind | undefined,
    private readonly trace: Trace = noTrace,
  ) {}

  now(): Instant {
    return monotonicNow();
  }

  addComponent(c: TimedComponent, intercept?: (now: Instant, ev: NetEvent) => boolean): void {
    this.extra.push(c);
    if (intercept) this.interceptors.push(intercept);
  }

  /** A datagram from the outer UDP socket. */
  onDatagram(data: Uint8Array, address: string, port: number): void {
    this.receive(data, address, port);
    this.pump();
  }

  /**
   * A datagram of a batch: handled by the Device now, pumped once after the
   * batch (UdpBind's onBatchEnd), so a batch of 64 costs one drain, not 64.
   */
  receive(data: Uint8Array, address: string, port: number): void {
    if (this.closed || this.suspended) return;
    this.device.receiveDatagram(this.now(), data, { address, port });
  }

  /** Something changed in a core outside of pump (an application write): pump soon, once. */
  schedule(): void {
    if (this.scheduled || this.closed) return;
    this.scheduled = true;
    queueMicrotask(() => {
      this.scheduled = false;
      this.pump();
    });
  }

  /** Drains both cores until quiet, then re-arms the timer. */
  pump(): void {
    if (this.closed || this.suspended) return;
    if (this.pumping) {
      this.again = true;
      return;
    }
    this.pumping = true;
    try {
      do {
        this.again = false;
        this.drain(this.now());
      } while (this.again);
    } finally {
      this.pumping = false;
      this.bind?.flush();
      // Armed even if a core threw (a bug, never network input): a tunnel without its
      // timer would stop retransmitting, rekeying and expiring for good.
      this.arm();
    }
  }

  /**
   * An exception from application code met while delivering events (a listener of 'data',
   * 'connection', 'message', 'handshake'...): counted and rethrown on the next tick, where it
   * is an 'uncaughtException' as from any Node event listener. The process dies of it unless
   * the application handles 'uncaughtException'; if it does, the tunnel and every other
   * connection go on, because the pump that met the exception finished its work first.
   * The API layer calls this too, for loops that deliver several items per event.
   */
  callbackError(err: unknown): void {
    this.callbackErrors++;
    process.nextTick(() => {
      throw err;
    });
  }

  private deliverNet(ev: NetEvent): void {
    try {
      this.handlers.onNetEvent(ev);
    } catch (err) {
      this.callbackError(err);
    }
  }

  private deliverDevice(ev: DeviceEvent): void {
    try {
      this.handlers.onDeviceEvent(ev);
    } catch (err) {
      this.callbackError(err);
    }
  }

  /**
   * Drains the cores. After BATCH datagrams it yields to the event loop (one
   * setImmediate) so incoming datagrams, ACKs among them, are read before the
   * next burst: a burst larger than the kernel's UDP buffer is lost whole.
   */
  private drain(now: Instant): void {
    const { device, iface } = this;
    let sent = 0;
    for (;;) {
      if (sent >= BATCH) {
        // Handshakes come after data but are never starved by it: a turn that ends with
        // data still to send serves its slice of them too (answers out with this batch).
        this.serveHandshakes();
        let d: { to: { address: string; port: number }; data: Uint8Array } | undefined;
        while ((d = device.pollTransmit()) !== undefined) this.bind?.send(d.data, d.to.address, d.to.port);
        return this.yieldTurn();
      }
      let progress = false;
      let p: Uint8Array | undefined;
      while ((p = device.pollPacket()) !== undefined) {
        if (this.tap) this.tap(p, true);
        progress = true;
        if (this.route?.(now, p)) continue;
        iface.handleInput(now, p);
      }
      while (sent < BATCH && (p = iface.pollTransmit(now)) !== undefined) {
        if (this.tap) this.tap(p, false);
        device.handlePacket(now, p);
        progress = true;
        sent++;
      }
      let d: { to: { address: string; port: number }; data: Uint8Array } | undefined;
      while ((d = device.pollTransmit()) !== undefined) this.bind?.send(d.data, d.to.address, d.to.port);
      let ne: NetEvent | undefined;
      while ((ne = iface.pollEvent()) !== undefined) {
        progress = true;
        let taken = false;
        for (const f of this.interceptors) if ((taken = f(now, ne))) break;
        if (!taken) this.deliverNet(ne);
      }
      let de: DeviceEvent | undefined;
      while ((de = device.pollEvent()) !== undefined) {
        progress = true;
        this.deliverDevice(de);
      }
      if (progress) continue;
      // Quiet: now the queued handshake messages, for one slice; their answers (and data
      // that a completed handshake releases) go out on the next pass of the loop.
      if (device.handshakeBacklog === 0) {
        this.handshakeUntil = -1;
        return;
      }
      if (!this.serveHandshakes()) return this.yieldTurn();
    }
  }

  /** Serves queued handshake messages until this turn's slice is spent; false if it already was. */
  private serveHandshakes(): boolean {
    const device = this.device;
    if (device.handshakeBacklog === 0) return true;
    let t = this.now();
    if (this.handshakeUntil < 0) this.handshakeUntil = t + HANDSHAKE_SLICE_MS;
    else if (t >= this.handshakeUntil) return false;
    do {
      device.handleHandshakes(t, 1);
      t = this.now();
    } while (device.handshakeBacklog > 0 && t < this.handshakeUntil);
    return true;
  }

  /** Ends this turn of the event loop and pumps again on the next (setImmediate: after I/O is read). */
  private yieldTurn(): void {
    this.bind?.flush();
    if (!this.yielded) {
      this.yielded = true;
      setImmediate(() => {
        this.yielded = false;
        this.handshakeUntil = -1; // a new turn: a new slice
        this.pump();
      });
    }
  }

  private onTimer = (): void => {
    this.timer = undefined;
    this.timerAt = Infinity;
    if (this.closed) return;
    const now = this.now();
    try {
      this.device.handleTimeout(now);
      this.iface.handleTimeout(now);
      for (const c of this.extra) c.handleTimeout(now);
    } finally {
      this.pump(); // drains and re-arms, even after an exception
    }
  };

  /**
   * One unref'd timer per tunnel (DESIGN §2), moved only when an earlier deadline appears.
   * Runs after every pump, three times per ping round trip. The device gives a lower bound of
   * its deadlines (Device.deadlineBound), not the exact earliest: its keepalive and
   * new-handshake deadlines move on nearly every packet, and the exact answer fixes up its timer
   * heap (pops and pushes) and allocates a Deadline each time, only to learn that the timer may
   * stay. With the bound, a deadline cancelled or moved later leaves the timer where it was; it
   * fires early at worst, once: handleTimeout runs nothing that is not due (it is idempotent)
   * and leaves the device's bound exact, and the timer is re-armed from there.
   */
  private arm(): void {
    let at = this.device.deadlineBound();
    let d = this.iface.pollTimeout();
    for (const c of this.extra) d = earliest(d, c.pollTimeout());
    if (d !== undefined && d.at < at) at = d.at;
    else d = undefined;
    if (at === Infinity) {
      if (this.timer) clearTimeout(this.timer);
      this.timer = undefined;
      this.timerAt = Infinity;
      return;
    }
    if (this.timer && at >= this.timerAt) return;
    if (this.timer) clearTimeout(this.timer);
    const delay = Math.max(0, Math.ceil(at - this.now()));
    this.timerAt = at;
    this.timer = setTimeout(this.onTimer, delay);
    this.timer.unref();
    if (this.trace.enabled('trace')) this.trace.log('trace', 'timer', { at, reason: d?.reason ?? 'wireguard timers' });
  }

  /**
   * Device sleep (tunnel.pause()): the cores stop running. With no pump and no timer no packet
   * is made and nothing wakes the process: keepalives, retransmissions, handshake retries and
   * rekeys wait, and what the application writes stays in the cores' buffers. unsuspend()
   * pumps and re-arms the timer; deadlines that passed meanwhile fire at once (handleTimeout
   * runs every deadline <= now, DESIGN §2).
   */
  suspend(): void {
    this.suspended = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.timerAt = Infinity;
  }

  unsuspend(): void {
    if (!this.suspended) return;
    this.suspended = false;
    this.pump();
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
}
