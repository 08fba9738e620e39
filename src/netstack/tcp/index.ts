/**
 * The TCP module's public entry: the layer the Interface drives, its options and its
 * counters. The implementation is split by job; layer.ts says which file holds what.
 */
export { TcpLayer } from './layer.js';
export type { TcpOptions } from './constants.js';
export type { TcpCounter, TcpStats } from './counters.js';
