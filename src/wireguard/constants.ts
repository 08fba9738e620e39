/**
 * Protocol constants, named as in the whitepaper ("WireGuard: Next Generation
 * Kernel Network Tunnel", §6.1 and §6.4 unless noted). Times are milliseconds.
 */
export const REKEY_AFTER_MESSAGES = 2 ** 60;
/**
 * 2^64 - 2^13 - 1 is above 2^53, so as a JS number it rounds; counters are
 * compared with >= and never get near it (a key dies at RejectAfterTime first).
 */
export const REJECT_AFTER_MESSAGES = 2 ** 64 - 2 ** 13 - 1;
export const REKEY_AFTER_TIME = 120_000;
export const REJECT_AFTER_TIME = 180_000;
export const REKEY_ATTEMPT_TIME = 90_000;
export const REKEY_TIMEOUT = 5_000;
export const KEEPALIVE_TIMEOUT = 10_000;
export const COOKIE_REFRESH_TIME = 120_000;
/** Handshake retries before giving up: RekeyAttemptTime / RekeyTimeout. */
export const MAX_TIMER_HANDSHAKES = REKEY_ATTEMPT_TIME / REKEY_TIMEOUT;
/** Key material is erased after three times RejectAfterTime without a new handshake (§6.3). */
export const ZERO_KEYS_AFTER = REJECT_AFTER_TIME * 3;
/** Random extra delay added to each handshake retry (§6.1, "jitter"). */
export const REKEY_TIMEOUT_JITTER_MAX = 333;
/** Initiations from one peer closer together than this are dropped (wireguard-go's HandshakeInitationRate). */
export const HANDSHAKE_INITIATION_RATE = 20;
/** The responder rekeys as initiator when the current session is this old on receive (§6.2). */
export const REKEY_ON_RECEIVE_AFTER = REJECT_AFTER_TIME - KEEPALIVE_TIMEOUT - REKEY_TIMEOUT;
/** Packets waiting for a handshake, per peer (wireguard-go's QueueStagedSize). */
export const MAX_STAGED_PACKETS = 128;

/** §5.4: the Noise construction, identifier and labels. */
export const CONSTRUCTION = 'Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s';
export const IDENTIFIER = 'WireGuard v1 zx2c4 Jason@zx2c4.com';
export const LABEL_MAC1 = 'mac1----';
export const LABEL_COOKIE = 'cookie--';
