/**
 * The whitepaper's §6 timers ("Timers & Stateless UX"), per peer: when each is armed and
 * what happens when it expires. The hooks carry the names of wireguard-go's timers.go, so
 * §6 can be read against both line by line; the deadlines are stored in one heap per
 * Device (timers.ts) and every write to them goes through this file.
 *
 * The five timers: retransmitHandshake (§6.4), sendKeepalive and newHandshake (§6.5),
 * zeroKeyMaterial (§6.3) and persistentKeepalive (the PersistentKeepalive option).
 * The §6.2 rekeys happen on a packet, not on a timer: they stay in the data path
 * (device.ts, encrypt and handleTransport). Where wgnet differs from wireguard-go it says so.
 */
import type { Instant } from '../util/time.js';
import { randomInt } from '../util/rng.js';
import * as K from './constants.js';
import { NEVER, type Peer } from './peer.js';
import { sendInitiation } from './handshake.js';
import type { Device } from './device.js';

// --- the hooks (wireguard-go's timers.go) ------------------------------------------

/** §6.5: after data is sent, a reply is expected within KeepaliveTimeout + RekeyTimeout, else a new handshake. */
export function timersDataSent(d: Device, now: Instant, peer: Peer): void {
  // wireguard-go adds 0-333 ms of jitter here; wgnet keeps the whitepaper's exact 15 s.
  if (peer.timers.newHandshake === NEVER) d.timers.arm(peer, 'newHandshake', now + K.KEEPALIVE_TIMEOUT + K.REKEY_TIMEOUT);
}

/** §6.5: after data is received, a keepalive is owed if nothing is sent within KeepaliveTimeout. */
export function timersDataReceived(d: Device, now: Instant, peer: Peer): void {
  // wireguard-go also notes "needAnotherKeepalive" when the timer is pending; wgnet does not.
  if (peer.timers.sendKeepalive === NEVER) d.timers.arm(peer, 'sendKeepalive', now + K.KEEPALIVE_TIMEOUT);
}

/** §6.5: any authenticated packet sent (data or keepalive) pays the keepalive owed (wgnet: not a handshake message). */
export function timersAnyAuthenticatedPacketSent(d: Device, peer: Peer): void {
  d.timers.cancel(peer, 'sendKeepalive');
}

/** §6.5: any authenticated packet received (data or keepalive) is the reply that data sent was waiting for. */
export function timersAnyAuthenticatedPacketReceived(d: Device, peer: Peer): void {
  d.timers.cancel(peer, 'newHandshake');
}

/** §6.4: after an initiation is sent, retry after RekeyTimeout plus 0-333 ms of jitter. */
export function timersHandshakeInitiated(d: Device, now: Instant, peer: Peer): void {
  d.timers.arm(peer, 'retransmitHandshake', now + K.REKEY_TIMEOUT + randomInt(d.rng, K.REKEY_TIMEOUT_JITTER_MAX + 1));
}

/** §6.4: a confirmed session (response consumed, or first data under a session we answered) ends the retries. */
export function timersHandshakeComplete(d: Device, peer: Peer): void {
  d.timers.cancel(peer, 'retransmitHandshake');
  peer.attempts = 0;
  peer.lastHandshakeWallMs = d.wallClock();
}

/** §6.3: after session keys are derived, zero them all after 3 × RejectAfterTime without a new handshake. */
export function timersSessionDerived(d: Device, now: Instant, peer: Peer): void {
  d.timers.arm(peer, 'zeroKeyMaterial', now + K.ZERO_KEYS_AFTER);
}

/** The persistent keepalive (§6.5's keepalive, sent every N seconds of silence): any authenticated packet in or out restarts it, handshakes too. */
export function timersAnyAuthenticatedPacketTraversal(d: Device, now: Instant, peer: Peer): void {
  if (peer.persistentKeepalive > 0) d.timers.arm(peer, 'persistentKeepalive', now + peer.persistentKeepalive * 1000);
}

// --- configuration and session state (wgnet's; wireguard-go stops its timers in Peer.Stop) ---

/** The sessions were dropped: every timer stops but the persistent keepalive, which belongs to the configuration. */
export function timersSessionsCleared(d: Device, peer: Peer): void {
  d.timers.cancel(peer, 'retransmitHandshake');
  d.timers.cancel(peer, 'sendKeepalive');
  d.timers.cancel(peer, 'newHandshake');
  d.timers.cancel(peer, 'zeroKeyMaterial');
  peer.attempts = 0;
}

/** PersistentKeepalive was set to 0: the keepalive stops now, not at its next expiry. */
export function timersPersistentKeepaliveOff(d: Device, peer: Peer): void {
  d.timers.cancel(peer, 'persistentKeepalive');
}

/** The peer is removed (wireguard-go's timersStop): every timer stops. */
export function timersStop(d: Device, peer: Peer): void {
  d.timers.cancelAll(peer);
}

// --- expiry ------------------------------------------------------------------------

/** Runs every peer timer due at or before `now`: the due peers come off the heap, O(log n) each. */
export function expireTimers(d: Device, now: Instant): void {
  const due = new Set<Peer>();
  d.timers.collectDue(now, due);
  for (const peer of due) expired(d, now, peer);
}

/** The expired* functions of wireguard-go's timers.go, for one peer, in a fixed order. */
function expired(d: Device, now: Instant, peer: Peer): void {
  const t = peer.timers;
  // expiredZeroKeyMaterial first: when timers run late (suspend, clock jump) it may be due together with a
  // handshake retry, and it must not forget a handshake sent in this same run (found by test/fuzz).
  if (t.zeroKeyMaterial <= now) {
    d.timers.cancel(peer, 'zeroKeyMaterial');
    const staged = peer.staged;
    const handshaking = peer.pending !== undefined;
    d.clearSessions(peer);
    peer.staged = staged;
    if (handshaking || staged.length > 0) sendInitiation(d, now, peer, true);
  }
  // expiredRetransmitHandshake
  if (t.retransmitHandshake <= now) {
    d.timers.cancel(peer, 'retransmitHandshake');
    if (peer.attempts >= K.MAX_TIMER_HANDSHAKES) {
      // §6.4: give up after RekeyAttemptTime; packets waiting are dropped.
      d.stats.dropped.stagedOverflow = (d.stats.dropped.stagedOverflow ?? 0) + peer.staged.length;
      peer.staged = [];
      if (peer.pending) d.index.delete(peer.pending.localIndex);
      peer.pending = undefined;
      peer.attempts = 0;
      // Residue of the partial exchange goes after 3 × RejectAfterTime, as wireguard-go.
      if (t.zeroKeyMaterial === NEVER) timersSessionDerived(d, now, peer);
      d.emit({ type: 'handshake-failed', peer });
    } else {
      peer.attempts++;
      sendInitiation(d, now, peer, true);
    }
  }
  // expiredSendKeepalive
  if (t.sendKeepalive <= now) {
    d.timers.cancel(peer, 'sendKeepalive');
    d.sendKeepalive(now, peer);
  }
  // expiredNewHandshake: data was sent and nothing came back for KeepaliveTimeout + RekeyTimeout (§6.5).
  if (t.newHandshake <= now) {
    d.timers.cancel(peer, 'newHandshake');
    d.initiateHandshake(now, peer);
  }
  // expiredPersistentKeepalive
  if (t.persistentKeepalive <= now) {
    d.timers.cancel(peer, 'persistentKeepalive');
    if (peer.persistentKeepalive > 0) d.sendKeepalive(now, peer);
  }
}
