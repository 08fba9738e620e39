/**
 * wg-quick configuration files (wg(8) CONFIGURATION FILE FORMAT, wg-quick(8)).
 * Keys and section names are case-insensitive as in wg's parser; `#` starts a
 * comment; list values are comma-separated and repeated lines accumulate.
 */
import { formatIp, formatPrefix, parseIp } from '../util/ip.js';
import { toBase64 } from '../util/bytes.js';
import { ConfigError, type PeerSpec, type TunnelConfig } from './model.js';
import { closest, isShowable, parseAddress, parseCidr, parseEndpoint, parseKeyValue, parsePort, parseUint, type Parsed } from './values.js';
import { checkRuleConflicts, ruleSection, RULE_SECTIONS, RuleSectionParser, type ListenerRule } from './rules.js';

/** wg-quick keys that mean nothing without an OS interface: accepted, reported once. */
const IGNORED = new Map([
  ['preup', 'PreUp'],
  ['postup', 'PostUp'],
  ['predown', 'PreDown'],
  ['postdown', 'PostDown'],
  ['table', 'Table'],
  ['saveconfig', 'SaveConfig'],
]);

/** Every key wg-quick files may hold, as wg(8) spells them: what errors name instead of the text found. */
const INTERFACE_KEYS = ['PrivateKey', 'Address', 'DNS', 'MTU', 'ListenPort', 'FwMark', ...IGNORED.values()];
const PEER_KEYS = ['PublicKey', 'PresharedKey', 'Endpoint', 'AllowedIPs', 'PersistentKeepalive'];
const CANONICAL = new Map([...INTERFACE_KEYS, ...PEER_KEYS].map((k) => [k.toLowerCase(), k]));

/**
 * "unknown key" / "unknown section": the name found is echoed only if it cannot
 * be key material (values.ts isShowable), plus the nearest known name.
 */
function unknownName(what: string, found: string, known: readonly string[]): string {
  const guess = closest(found, known);
  const hint = guess ? ` (did you mean ${what === 'section' ? `[${guess}]` : guess}?)` : '';
  return isShowable(found) ? hint : ` (name not shown: ${found.length} characters)${hint}`;
}

/**
 * The tunnel of a wg-quick file. Strict as wg(8): a listener section ([Socks5], [TCPClientTunnel],
 * ... rules.ts) is an error here, because a Tunnel opens no listeners and a file that asks for
 * them should not look as if it worked; `wgnet proxy` / `forward` read them with
 * parseWgQuickWithRules.
 */
export function parseWgQuick(text: string, opts: { file?: string } = {}): TunnelConfig {
  return parse(text, opts.file, undefined);
}

/** The tunnel and the listener rules of a wg-quick file with wireproxy's sections (rules.ts), in file order. */
export function parseWgQuickWithRules(text: string, opts: { file?: string } = {}): { config: TunnelConfig; rules: ListenerRule[] } {
  const rules: ListenerRule[] = [];
  const config = parse(text, opts.file, rules);
  return { config, rules };
}

function parse(text: string, file: string | undefined, rules: ListenerRule[] | undefined): TunnelConfig {
  let section: 'interface' | 'peer' | 'rule' | undefined;
  let rule: RuleSectionParser | undefined;
  let sawInterface = false;
  let privateKey: Uint8Array | undefined;
  const cfg: Omit<TunnelConfig, 'privateKey'> = { addresses: [], dns: { servers: [], search: [] }, peers: [], warnings: [], source: file };
  const ignoredSeen = new Set<string>();
  let peer: (PeerSpec & { line: number; hasKey: boolean }) | undefined;
  const seenKeys = new Set<string>();

  const finishPeer = (): void => {
    if (!peer) return;
    if (!peer.hasKey) throw new ConfigError({ file, line: peer.line }, '[Peer] section without a PublicKey');
    const id = toBase64(peer.publicKey);
    if (seenKeys.has(id)) throw new ConfigError({ file, line: peer.line }, 'a peer with this PublicKey is already configured');
    seenKeys.add(id);
    const { line: _l, hasKey: _h, ...spec } = peer;
    cfg.peers.push(spec);
    peer = undefined;
  };
  const finishSection = (): void => {
    finishPeer();
    if (rule) rules!.push(rule.finish());
    rule = undefined;
  };

  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const lineNo = i + 1;
    const raw = lines[i]!;
    const hash = raw.indexOf('#');
    const line = (hash >= 0 ? raw.slice(0, hash) : raw).trim();
    if (line === '') continue;
    const sec = /^\[\s*([A-Za-z][A-Za-z0-9]*)\s*\]$/.exec(line);
    if (sec) {
      const name = sec[1]!.toLowerCase();
      const ruleName = ruleSection(name);
      if (name === 'interface') {
        finishSection();
        if (sawInterface) throw new ConfigError({ file, line: lineNo }, 'a second [Interface] section');
        section = 'interface';
        sawInterface = true;
      } else if (name === 'peer') {
        finishSection();
        section = 'peer';
        peer = { publicKey: new Uint8Array(32), allowedIps: [], line: lineNo, hasKey: false };
      } else if (ruleName && rules) {
        finishSection();
        section = 'rule';
        rule = new RuleSectionParser(ruleName, lineNo, file);
      } else if (ruleName) {
        throw new ConfigError({ file, line: lineNo }, `[${ruleName}] is a listener section: a Tunnel opens no listeners; run this file with 'wgnet proxy -c' or 'wgnet forward -c', or remove the section`);
      } else if (name === 'stdiotunnel') {
        throw new ConfigError({ file, line: lineNo }, "[STDIOTunnel] is not supported: wgnet has no stdin/stdout tunnel (a [Socks5] section and 'nc -X 5' as ssh's ProxyCommand do the same)");
      } else {
        const shownName = isShowable(sec[1]!) ? ` [${sec[1]}]` : '';
        const known = rules ? ['Interface', 'Peer', ...RULE_SECTIONS] : ['Interface', 'Peer'];
        const expected = rules ? `[Interface], [Peer] or a listener section: ${RULE_SECTIONS.map((r) => `[${r}]`).join(', ')}` : '[Interface] or [Peer]';
        throw new ConfigError({ file, line: lineNo }, `unknown section${shownName}${unknownName('section', sec[1]!, known)} (expected ${expected})`);
      }
      continue;
    }
    const eq = line.indexOf('=');
    // The line is not quoted: it may be a key that lost its 'Key =' (or its '=').
    if (eq < 0) throw new ConfigError({ file, line: lineNo }, `expected 'Key = Value' or a [Section] (the line, ${line.length} characters, is not shown)`);
    const found = line.slice(0, eq).trim();
    // Errors name the key as wg(8) spells it; a name that is not a key is shown only if it cannot be key material.
    const key = CANONICAL.get(found.toLowerCase()) ?? (isShowable(found) ? found : undefined);
    const value = line.slice(eq + 1).trim();
    const lk = found.toLowerCase();
    const need = <T>(r: Parsed<T>): T => {
      if (!r.ok) throw new ConfigError({ file, line: lineNo, key }, r.error);
      return r.value;
    };
    const list = (): string[] => value.split(',').map((s) => s.trim()).filter((s) => s !== '');
    if (!section) {
      // wireproxy's include of a separate wg-quick file: name it rather than "must be inside".
      if (lk === 'wgconfig') throw new ConfigError({ file, line: lineNo, key: 'WGConfig' }, 'is not supported: put the [Interface] and [Peer] sections in this file');
      throw new ConfigError({ file, line: lineNo, key }, 'this key must be inside an [Interface] or [Peer] section');
    }
    if (section === 'rule') rule!.key(found, value, lineNo);
    else if (section === 'interface') {
      switch (lk) {
        case 'privatekey':
          privateKey = need(parseKeyValue(value));
          break;
        case 'address':
          for (const a of list()) cfg.addresses.push(need(parseAddress(a)));
          break;
        case 'dns':
          for (const d of list()) {
            const ip = parseIp(d);
            if (ip) cfg.dns.servers.push(ip);
            else cfg.dns.search.push(d);
          }
          break;
        case 'mtu':
          cfg.mtu = need(parseUint(value, 576, 65535));
          break;
        case 'listenport':
          cfg.listenPort = need(parsePort(value));
          break;
        case 'fwmark':
          if (value.toLowerCase() === 'off') cfg.fwMark = 0;
          else if (/^0x[0-9a-f]{1,8}$/i.test(value)) cfg.fwMark = parseInt(value, 16);
          else cfg.fwMark = need(parseUint(value, 0, 0xffffffff));
          break;
        default: {
          const name = IGNORED.get(lk);
          if (!name) throw new ConfigError({ file, line: lineNo, key }, `unknown key in [Interface]${unknownName('key', found, INTERFACE_KEYS)}`);
          if (!ignoredSeen.has(lk)) {
            ignoredSeen.add(lk);
            cfg.warnings.push(`${file ?? '<config>'}:${lineNo}: ${name} is ignored: wgnet has no OS interface to run it on`);
          }
        }
      }
    } else {
      const p = peer!;
      switch (lk) {
        case 'publickey':
          p.publicKey = need(parseKeyValue(value));
          p.hasKey = true;
          break;
        case 'presharedkey':
          p.presharedKey = need(parseKeyValue(value));
          break;
        case 'endpoint':
          p.endpoint = need(parseEndpoint(value));
          break;
        case 'allowedips':
          for (const a of list()) p.allowedIps.push(need(parseCidr(a)));
          break;
        case 'persistentkeepalive':
          p.persistentKeepalive = value.toLowerCase() === 'off' ? 0 : need(parseUint(value, 0, 65535));
          break;
        default:
          throw new ConfigError({ file, line: lineNo, key }, `unknown key in [Peer]${unknownName('key', found, PEER_KEYS)}`);
      }
    }
  }
  finishSection();
  if (rules) checkRuleConflicts(rules, file);
  if (!sawInterface) throw new ConfigError({ file }, 'missing [Interface] section');
  if (!privateKey) throw new ConfigError({ file, key: 'PrivateKey' }, 'missing in [Interface]');
  return { privateKey, ...cfg };
}

/** The same format back; round-trips through parseWgQuick. */
export function formatWgQuick(cfg: TunnelConfig): string {
  const out = ['[Interface]', `PrivateKey = ${toBase64(cfg.privateKey)}`];
  if (cfg.addresses.length) out.push(`Address = ${cfg.addresses.map((a) => `${formatIp(a.addr)}/${a.bits}`).join(', ')}`);
  const dns = [...cfg.dns.servers.map(formatIp), ...cfg.dns.search];
  if (dns.length) out.push(`DNS = ${dns.join(', ')}`);
  if (cfg.mtu !== undefined) out.push(`MTU = ${cfg.mtu}`);
  if (cfg.listenPort !== undefined) out.push(`ListenPort = ${cfg.listenPort}`);
  if (cfg.fwMark !== undefined) out.push(`FwMark = ${cfg.fwMark}`);
  for (const p of cfg.peers) {
    out.push('', '[Peer]', `PublicKey = ${toBase64(p.publicKey)}`);
    if (p.presharedKey) out.push(`PresharedKey = ${toBase64(p.presharedKey)}`);
    if (p.endpoint) out.push(`Endpoint = ${p.endpoint.host.includes(':') ? `[${p.endpoint.host}]` : p.endpoint.host}:${p.endpoint.port}`);
    if (p.allowedIps.length) out.push(`AllowedIPs = ${p.allowedIps.map(formatPrefix).join(', ')}`);
    if (p.persistentKeepalive !== undefined) out.push(`PersistentKeepalive = ${p.persistentKeepalive}`);
  }
  return out.join('\n') + '\n';
}
