/** Two wgnet tunnels in this process, peered over loopback UDP, with fresh keys. */
import { Tunnel, type TunnelOptions } from '../../src/index.js';
import { getCryptoProvider } from '../../src/crypto/index.js';
import { generatePrivateKey, publicKeyFromPrivate } from '../../src/crypto/keys.js';
import { systemRng } from '../../src/io/clock.js';
import { toBase64 } from '../../src/util/bytes.js';

export interface TunnelPair {
  a: Tunnel; // 10.66.0.1, fd66::1
  b: Tunnel; // 10.66.0.2, fd66::2
  close(): Promise<void>;
}

export function keyPair(): { privateKey: string; publicKey: string } {
  const k = generatePrivateKey(systemRng);
  return { privateKey: toBase64(k), publicKey: toBase64(publicKeyFromPrivate(getCryptoProvider('auto'), k)) };
}

export async function tunnelPair(opts: TunnelOptions & { extraA?: string; extraB?: string; mtu?: number } = {}): Promise<TunnelPair> {
  const ka = keyPair();
  const kb = keyPair();
  const mtu = opts.mtu ? `MTU = ${opts.mtu}\n` : '';
  const a = await Tunnel.create(
    `[Interface]\nPrivateKey = ${ka.privateKey}\nAddress = 10.66.0.1/24, fd66::1/64\n${mtu}${opts.extraA ?? ''}\n[Peer]\nPublicKey = ${kb.publicKey}\nAllowedIPs = 10.66.0.2/32, fd66::2/128\n`,
    opts,
  );
  const b = await Tunnel.create(
    `[Interface]\nPrivateKey = ${kb.privateKey}\nAddress = 10.66.0.2/24, fd66::2/64\n${mtu}${opts.extraB ?? ''}\n[Peer]\nPublicKey = ${ka.publicKey}\nAllowedIPs = 10.66.0.1/32, fd66::1/128\nEndpoint = 127.0.0.1:${a.listenPort}\n`,
    opts,
  );
  // Each side knows the other's endpoint, so either can start the handshake.
  await a.ipcSet(`public_key=${Buffer.from(kb.publicKey, 'base64').toString('hex')}\nendpoint=127.0.0.1:${b.listenPort}\n`);
  return {
    a,
    b,
    close: async () => {
      await b.close();
      await a.close();
    },
  };
}
