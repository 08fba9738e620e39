/** wgnet: WireGuard for Node.js. Public exports only (DESIGN §1). */
export { Tunnel } from './api/tunnel.js';
export type { TunnelOptions, TunnelLimits, ConnectOptions, PingResult, LookupResult, TunnelDispatcherOptions, TunnelConnectOptions, PeerStatus, TunnelStats, GatewayStats, TcpSnapshot, SyncResult, RestartField } from './api/tunnel.js';
export type { TunnelEvents, PeerEventInfo } from './api/types/events.js';
export { TcpSocket } from './api/tcp-socket.js';
export type { TcpSocketOptions } from './api/tcp-socket.js';
export { TcpServer } from './api/tcp-server.js';
export type { TcpServerOptions, ListenOptions } from './api/tcp-server.js';
export { TunnelUdpSocket } from './api/udp-socket.js';
export type { FlowInfo, FlowProtocol, FlowDecision, FlowHandler, AcceptedFlow, GatewayOptions, GatewayCounter } from './api/gateway.js';
export { ConfigError } from './config/index.js';
export type { TunnelConfigInput, TunnelConfigObject, PeerConfigObject, SingBoxEndpointObject, SingBoxConfigObject, TunnelConfig, PeerSpec } from './config/index.js';
export { WgnetError } from './util/errors.js';
export type { WgnetErrorCode } from './util/errors.js';
export { diagnosticsChannels } from './api/diagnostics.js';
export type { PeerMessage, TcpOpenMessage, TcpCloseMessage, FlowMessage, FlowEvent, DropMessage } from './api/diagnostics.js';
