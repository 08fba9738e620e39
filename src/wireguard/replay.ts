/**
 * The anti-replay window of RFC 6479 as WireGuard sizes it (whitepaper §5.4.6):
 * a ring of 32-bit words; counters up to REPLAY_WINDOW_SIZE behind the highest
 * accepted one are remembered, older ones are rejected. Words are cleared lazily
 * as the window slides, so a jump costs at most one pass over the ring.
 */
const WORD_BITS = 32;
const RING_WORDS = 8192 / WORD_BITS; // 256 words, 8192 bits
/** One word is kept as slack for the lazy clearing, as in RFC 6479. */
export const REPLAY_WINDOW_SIZE = 8192 - WORD_BITS * 2; // 8128: wireguard-go's value

export class ReplayWindow {
  private readonly ring = new Uint32Array(RING_WORDS);
  /** Highest accepted counter + 1 (0: none yet). */
  private next = 0;

  reset(): void {
    this.ring.fill(0);
    this.next = 0;
  }

  /** Call only after the packet authenticated. True if `counter` is new and accepted. */
  accept(counter: number, limit: number): boolean {
    if (counter >= limit || counter < 0) return false;
    const word = Math.floor(counter / WORD_BITS);
    if (counter >= this.next) {
      // Slide: clear every word between the old top and the new one.
      const top = this.next === 0 ? -1 : Math.floor((this.next - 1) / WORD_BITS);
      const clear = Math.min(word - top, RING_WORDS);
      for (let i = 1; i <= clear; i++) this.ring[(top + i) % RING_WORDS] = 0;
      this.next = counter + 1;
    } else if (this.next - 1 - counter > REPLAY_WINDOW_SIZE) {
      return false; // too old
    }
    const idx = word % RING_WORDS;
    const bit = 1 << (counter % WORD_BITS);
    if ((this.ring[idx]! & bit) !== 0) return false; // replay
    this.ring[idx]! |= bit;
    return true;
  }
}
