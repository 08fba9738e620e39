/**
 * Compile-time test (run by `npm run typecheck`; it has no runtime part): the tunnel's
 * sockets, lookup and events are assignable where Node's own types expect them, so a
 * client library typed against `net.Socket` / `dgram` takes them without a cast.
 */
import type net from 'node:net';
import type dgram from 'node:dgram';
import type { Tunnel, TcpSocket, TcpServer, TunnelUdpSocket, TunnelConfigInput, TunnelConfigObject, TcpSocketOptions, GatewayOptions, FlowInfo, WgnetErrorCode, TunnelEvents } from '../../src/index.js';
import { ConfigError } from '../../src/index.js';

export function checks(tunnel: Tunnel): void {
  const s: net.Socket = tunnel.connect(5432, '10.0.0.1');
  const s2: net.Socket = tunnel.connect('8080', '10.0.0.1');
  const s3: net.Socket = tunnel.createConnection({ port: '8080', host: 'db.internal' });
  const lf: net.LookupFunction = tunnel.lookupFunction;
  // ws's createConnection option and http.request's are typed as net.createConnection
  const cc: typeof net.createConnection = tunnel.createConnection.bind(tunnel);
  void cc;
  const sock: TcpSocket = tunnel.connect({ port: 80 });
  sock.connect(80, '10.0.0.1').setTimeout(10).setNoDelay(true).setKeepAlive(true, 1000).destroySoon();
  const n: number = sock.bufferSize + sock.bytesRead + sock.bytesWritten;
  const a: string[] = sock.autoSelectFamilyAttemptedAddresses;
  const st: net.SocketReadyState = sock.readyState;
  const b: boolean = sock.pending || sock.connecting;
  const fam: string | undefined = sock.remoteFamily;
  const addr: net.AddressInfo | {} = sock.address();
  void [s, s2, s3, lf, n, a, st, b, fam, addr];

  tunnel.createSocket('udp4', (msg: Buffer, rinfo: dgram.RemoteInfo) => void [msg, rinfo.address, rinfo.family]);
  const u: TunnelUdpSocket = tunnel.createSocket('udp6');
  const d: dgram.Socket = tunnel.createSocket('udp4'); // where a library expects a dgram.Socket
  d.send(new DataView(new ArrayBuffer(4)), 53, '10.0.0.1', (err, bytes) => void [err, bytes]);
  u.on('message', (_m, rinfo) => void rinfo.port);
  u.send('x', '53', '10.0.0.1');

  tunnel.on('handshake', (e) => void e.publicKey.length);
  tunnel.once('endpoint-changed', (e) => void e.endpoint?.port);
  // @ts-expect-error a misspelt event name does not compile
  tunnel.on('handhsake', () => {});
  // @ts-expect-error the listener gets the event's arguments, not anything
  tunnel.on('handshake', (e: number) => void e);

  const srv: TcpServer = tunnel.createServer();
  srv.listen(80);
  srv.listen(80, '10.0.0.1');
  srv.listen(80, '10.0.0.1', 511, () => {});
  srv.listen('8080', () => {});
  srv.listen({ port: 80, host: '::' }, () => {});
  srv.listen(() => {});
  // @ts-expect-error listen() takes a port, not anything
  srv.listen(true);

  const cfg: TunnelConfigObject = { privateKey: 'k', address: '10.0.0.2/32', dns: '1.1.1.1', peers: [{ publicKey: 'p', allowedIps: '0.0.0.0/0', endpoint: 'vpn.example.com:51820' }] };
  const input: TunnelConfigInput = cfg;
  // @ts-expect-error the config object is strict: wg-quick's spelling is a compile error, not a silent no-op
  const bad: TunnelConfigObject = { privateKey: 'k', peers: [{ publicKey: 'p', allowedIPs: ['0.0.0.0/0'] }] };
  // @ts-expect-error also where Tunnel.create() takes it
  const bad2: TunnelConfigInput = { privateKey: 'k', listenport: 51820 };
  const singBox: TunnelConfigInput = { type: 'wireguard', private_key: 'k', peers: [] };
  const o: TcpSocketOptions = { allowHalfOpen: true };
  const g: GatewayOptions = {};
  const f: FlowInfo | undefined = undefined;
  const code: WgnetErrorCode = 'ERR_WGNET_NATIVE';
  const ev: keyof TunnelEvents = 'handshake';
  const ce: Error = new ConfigError({ path: 'x' }, 'y');
  void [input, bad, bad2, singBox, o, g, f, code, ev, ce];
}
