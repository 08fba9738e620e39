/** wgnet: WireGuard for Node.js. Public exports only (DESIGN §1). */
export { Tunnel } from './api/tunnel.js';
export type { TunnelOptions, ConnectOptions, PingResult, LookupResult } from './api/tunnel.js';
export { TcpSocket } from './api/tcp-socket.js';
export { TcpServer } from './api/tcp-server.js';
export { TunnelUdpSocket } from './api/udp-socket.js';
export { WgnetError } from './util/errors.js';
export type { WgnetErrorCode } from './util/errors.js';
