/**
 * Listener rules in the config file, in wireproxy's sections, so that one file holds the
 * tunnel and what `wgnet proxy` / `wgnet forward` serve on it, and SIGHUP can change both:
 *
 *   [Socks5]            BindAddress = 127.0.0.1:1080   (Username, Password: optional, together)
 *   [http]              BindAddress = 127.0.0.1:8080   (Username, Password)
 *   [TCPClientTunnel]   BindAddress = 127.0.0.1:25565, Target = host:port   (as -L)
 *   [TCPServerTunnel]   ListenPort = 3422, Target = localhost:25545          (as -R)
 *   [UDPProxyTunnel]    BindAddress = 127.0.0.1:5353, Target = host:port     (as --udp -L; InactivityTimeout = seconds)
 *
 * Section and key names are case-insensitive, as the rest of the wg-quick format. Each section
 * is one listener; a key given twice, an unknown key or a missing one is an error naming
 * file:line and the key. Username and Password are never quoted in an error.
 */
import { inspect } from 'node:util';
import { parseIp } from '../util/ip.js';
import { ConfigError, type EndpointSpec } from './model.js';
import { closest, isShowable, parseEndpoint, parsePort, parseUint, shown, type Parsed } from './values.js';

/** The section names as wireproxy spells them; matched case-insensitively. */
export const RULE_SECTIONS = ['Socks5', 'http', 'TCPClientTunnel', 'TCPServerTunnel', 'UDPProxyTunnel'] as const;
export type RuleSection = (typeof RULE_SECTIONS)[number];

/** A local listen address. `host` '' is every interface (wireproxy's ':1080', as Go's net.Listen reads it). */
export interface BindAddress {
  host: string;
  port: number;
}

/** Proxy credentials; `inspect` and JSON show the user name only. */
export interface ProxyAuth {
  readonly username: string;
  readonly password: string;
}

/** Where a rule came from, for logs and errors: the file, the section's line and name. */
export interface RuleOrigin {
  file?: string;
  line: number;
  section: RuleSection;
}

/**
 * One listener. `tcp-client` / `udp-client` listen on this machine and dial through the tunnel
 * (-L); `tcp-server` / `udp-server` listen on the tunnel's address and dial this machine (-R).
 * `udp-server` has no wireproxy section: only `--udp -R` makes one.
 */
export type ListenerRule =
  | { kind: 'socks5' | 'http'; bind: BindAddress; auth?: ProxyAuth; origin?: RuleOrigin }
  | { kind: 'tcp-client'; bind: BindAddress; target: EndpointSpec; origin?: RuleOrigin }
  | { kind: 'tcp-server'; port: number; target: EndpointSpec; origin?: RuleOrigin }
  | { kind: 'udp-client'; bind: BindAddress; target: EndpointSpec; idleMs?: number; origin?: RuleOrigin }
  | { kind: 'udp-server'; port: number; target: EndpointSpec; idleMs?: number; origin?: RuleOrigin };

export function proxyAuth(username: string, password: string): ProxyAuth {
  const redacted = { username, password: '<redacted>' };
  return Object.defineProperties(
    { username, password },
    {
      toJSON: { value: () => redacted },
      [inspect.custom]: { value: () => redacted },
    },
  );
}

/**
 * A rule's identity for a reload: every field that shapes the listener (credentials included,
 * compared here and never printed), not where it sits in the file, so an edit above a section
 * does not restart it.
 */
export function ruleId(r: ListenerRule): string {
  const ep = (e: EndpointSpec): string => `${e.host.toLowerCase()}|${e.port}`;
  const bind = (b: BindAddress): string => `${b.host.toLowerCase()}|${b.port}`;
  switch (r.kind) {
    case 'socks5':
    case 'http':
      return JSON.stringify([r.kind, bind(r.bind), r.auth ? [r.auth.username, r.auth.password] : null]);
    case 'tcp-client':
      return JSON.stringify([r.kind, bind(r.bind), ep(r.target)]);
    case 'udp-client':
      return JSON.stringify([r.kind, bind(r.bind), ep(r.target), r.idleMs ?? null]);
    case 'tcp-server':
      return JSON.stringify([r.kind, r.port, ep(r.target)]);
    case 'udp-server':
      return JSON.stringify([r.kind, r.port, ep(r.target), r.idleMs ?? null]);
  }
}

const hostText = (h: string): string => (h.includes(':') ? `[${h}]` : h);
export const formatBind = (b: BindAddress): string => `${hostText(b.host)}:${b.port}`;
const formatTarget = (e: EndpointSpec): string => `${hostText(e.host)}:${e.port}`;

/**
 * The rule as the command line would spell it (never with credentials): `socks5 127.0.0.1:1080`,
 * `-L 127.0.0.1:8022:10.0.0.5:22`, `-R 8080:127.0.0.1:3000`, a trailing ` udp` for UDP.
 */
export function describeRule(r: ListenerRule): string {
  switch (r.kind) {
    case 'socks5':
    case 'http':
      return `${r.kind} ${formatBind(r.bind)}`;
    case 'tcp-client':
    case 'udp-client':
      return `-L ${formatBind(r.bind)}:${formatTarget(r.target)}${r.kind === 'udp-client' ? ' udp' : ''}`;
    case 'tcp-server':
    case 'udp-server':
      return `-R ${r.port}:${formatTarget(r.target)}${r.kind === 'udp-server' ? ' udp' : ''}`;
  }
}

/** Keys each section takes, as wireproxy spells them (errors name these, not the text found). */
const SECTION_KEYS: Record<RuleSection, readonly string[]> = {
  Socks5: ['BindAddress', 'Username', 'Password'],
  http: ['BindAddress', 'Username', 'Password'],
  TCPClientTunnel: ['BindAddress', 'Target'],
  TCPServerTunnel: ['ListenPort', 'Target'],
  UDPProxyTunnel: ['BindAddress', 'Target', 'InactivityTimeout'],
};

/** The canonical section name, or undefined if `name` is not a rule section. */
export function ruleSection(name: string): RuleSection | undefined {
  const l = name.toLowerCase();
  return RULE_SECTIONS.find((s) => s.toLowerCase() === l);
}

/** BindAddress: IP:port, [IPv6]:port, localhost:port or :port (every interface); port 0 picks a free one. */
export function parseBind(s: string): Parsed<BindAddress> {
  const t = s.trim();
  const m = /^(?:\[([^\]]*)\]|([^:[\]]*)):([^:]*)$/.exec(t);
  const host = m ? (m[1] ?? m[2] ?? '') : '';
  if (!m || (m[1] !== undefined && !(host.includes(':') && parseIp(host))) || (m[2] !== undefined && host !== '' && host.toLowerCase() !== 'localhost' && !parseIp(host))) {
    return { ok: false, error: `expected IP:PORT, [IPv6]:PORT, localhost:PORT or :PORT, got ${shown(t)}` };
  }
  const port = parsePort(m[3]!);
  if (!port.ok) return { ok: false, error: `port ${port.error}` };
  return { ok: true, value: { host: host.toLowerCase() === 'localhost' ? '127.0.0.1' : host, port: port.value } };
}

/** RFC 1929 §2: user name and password are 1-255 bytes each. */
function credential(v: string): string | undefined {
  const n = Buffer.byteLength(v);
  return n < 1 || n > 255 ? `expected 1-255 bytes, got ${n} (the value is not shown)` : undefined;
}

/** Parses one rule section's lines; `finish()` checks the required keys and gives the rule. */
export class RuleSectionParser {
  private readonly values = new Map<string, { value: string; line: number }>();

  constructor(
    readonly section: RuleSection,
    readonly line: number,
    private readonly file: string | undefined,
  ) {}

  /** `found` as written, `lineNo` for the error; the value is parsed at finish(). */
  key(found: string, value: string, lineNo: number): void {
    const known = SECTION_KEYS[this.section];
    const name = known.find((k) => k.toLowerCase() === found.toLowerCase());
    if (!name) {
      const guess = closest(found, known);
      const shownName = isShowable(found) ? ` ${found}` : ` (name not shown: ${found.length} characters)`;
      throw new ConfigError({ file: this.file, line: lineNo }, `unknown key${shownName} in [${this.section}]${guess ? ` (did you mean ${guess}?)` : ''} (expected ${known.join(', ')})`);
    }
    const first = this.values.get(name);
    if (first) throw new ConfigError({ file: this.file, line: lineNo, key: name }, `given twice in [${this.section}] (first at line ${first.line})`);
    this.values.set(name, { value, line: lineNo });
  }

  finish(): ListenerRule {
    const file = this.file;
    const origin: RuleOrigin = { ...(file !== undefined ? { file } : {}), line: this.line, section: this.section };
    const get = <T>(key: string, parse: (v: string) => Parsed<T>): T | undefined => {
      const e = this.values.get(key);
      if (!e) return undefined;
      const r = parse(e.value);
      if (!r.ok) throw new ConfigError({ file, line: e.line, key }, r.error);
      return r.value;
    };
    const need = <T>(key: string, parse: (v: string) => Parsed<T>): T => {
      const v = get(key, parse);
      if (v === undefined) throw new ConfigError({ file, line: this.line }, `[${this.section}] needs ${key}`);
      return v;
    };
    switch (this.section) {
      case 'Socks5':
      case 'http': {
        const bind = need('BindAddress', parseBind);
        const user = this.values.get('Username');
        const pass = this.values.get('Password');
        if (!user !== !pass) {
          throw new ConfigError({ file, line: (user ?? pass)!.line, key: user ? 'Username' : 'Password' }, `needs ${user ? 'Password' : 'Username'} too: proxy authentication takes both`);
        }
        let auth: ProxyAuth | undefined;
        if (user && pass) {
          for (const [k, e] of [['Username', user], ['Password', pass]] as const) {
            const bad = credential(e.value);
            if (bad) throw new ConfigError({ file, line: e.line, key: k }, bad);
          }
          // RFC 7617 §2: the user-id of Basic authentication cannot hold a colon.
          if (this.section === 'http' && user.value.includes(':')) throw new ConfigError({ file, line: user.line, key: 'Username' }, "must not contain ':' for HTTP Basic authentication (the value is not shown)");
          auth = proxyAuth(user.value, pass.value);
        }
        return { kind: this.section === 'Socks5' ? 'socks5' : 'http', bind, ...(auth ? { auth } : {}), origin };
      }
      case 'TCPClientTunnel':
        return { kind: 'tcp-client', bind: need('BindAddress', parseBind), target: need('Target', parseEndpoint), origin };
      case 'TCPServerTunnel':
        return { kind: 'tcp-server', port: need('ListenPort', (v) => parseUint(v, 1, 65535)), target: need('Target', parseEndpoint), origin };
      case 'UDPProxyTunnel': {
        const idle = get('InactivityTimeout', (v) => parseUint(v, 1, 86_400));
        return { kind: 'udp-client', bind: need('BindAddress', parseBind), target: need('Target', parseEndpoint), ...(idle !== undefined ? { idleMs: idle * 1000 } : {}), origin };
      }
    }
  }
}

const WILDCARD = new Set(['', '0.0.0.0', '::']);

/** What a rule occupies: a port on this host or on the tunnel, TCP or UDP; port 0 takes none. */
function occupies(r: ListenerRule): { space: string; host: string; port: number } {
  switch (r.kind) {
    case 'socks5':
    case 'http':
    case 'tcp-client':
      return { space: 'host tcp', host: r.bind.host.toLowerCase(), port: r.bind.port };
    case 'udp-client':
      return { space: 'host udp', host: r.bind.host.toLowerCase(), port: r.bind.port };
    case 'tcp-server':
      return { space: 'tunnel tcp', host: '', port: r.port };
    case 'udp-server':
      return { space: 'tunnel udp', host: '', port: r.port };
  }
}

/**
 * Two sections that would listen on the same port: an error at the second, naming the first,
 * so that a reload with such a file changes nothing rather than half-applying.
 */
export function checkRuleConflicts(rules: readonly ListenerRule[], file: string | undefined): void {
  for (let i = 1; i < rules.length; i++) {
    const b = occupies(rules[i]!);
    if (b.port === 0) continue;
    for (let j = 0; j < i; j++) {
      const a = occupies(rules[j]!);
      if (a.space !== b.space || a.port !== b.port) continue;
      if (a.host !== b.host && !WILDCARD.has(a.host) && !WILDCARD.has(b.host)) continue;
      const r = rules[i]!;
      const what = r.kind === 'tcp-server' ? `ListenPort ${b.port}` : `BindAddress ${formatBind({ host: b.host, port: b.port })}`;
      const first = rules[j]!.origin;
      throw new ConfigError({ file, line: r.origin?.line }, `${what} is already taken by [${first?.section}] at line ${first?.line}`);
    }
  }
}
