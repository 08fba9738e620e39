/** Listener sections in the wg-quick file (wireproxy's format): each section, errors with file:line, no secret in any error. */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { inspect } from 'node:util';
import { parseWgQuick, parseWgQuickWithRules, loadConfig, ruleId, describeRule, ConfigError, type ListenerRule } from './index.js';

const K1 = 'yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=';
const K2 = 'xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=';
const HEAD = `[Interface]\nPrivateKey = ${K1}\nAddress = 10.200.200.2/32\n\n[Peer]\nPublicKey = ${K2}\nAllowedIPs = 0.0.0.0/0\nEndpoint = 127.0.0.1:51820\n`; // 8 lines
const SECRET = 'Zm9vYmFyYmF6cXV4cXV1eA';

const rulesOf = (body: string): ListenerRule[] => parseWgQuickWithRules(HEAD + body, { file: 'w.conf' }).rules;

/** The ConfigError that parsing `body` after HEAD throws. */
function failure(body: string): ConfigError {
  try {
    parseWgQuickWithRules(HEAD + body, { file: 'w.conf' });
  } catch (err) {
    assert.ok(err instanceof ConfigError, `a ConfigError, got ${String(err)}`);
    return err;
  }
  assert.fail('no error');
}

describe('listener sections', () => {
  test("wireproxy's sample: every section, its keys in any case, comments", () => {
    const rules = rulesOf(`
# a local SOCKS5 with a password
[Socks5]
BindAddress = 127.0.0.1:25344
Username = alice
Password = ${SECRET}

[http]
bindaddress = [::1]:25345

[TCPClientTunnel]   # local port -> tunnel
BindAddress = 127.0.0.1:25565
Target = play.cubecraft.net:25565

[tcpservertunnel]
LISTENPORT = 3422
Target = localhost:25545

[UDPProxyTunnel]
BindAddress = :5353
Target = 10.200.200.1:53
InactivityTimeout = 30
`);
    assert.equal(rules.length, 5);
    const [socks, http, client, server, udp] = rules as [ListenerRule, ListenerRule, ListenerRule, ListenerRule, ListenerRule];
    assert.deepEqual({ ...socks, auth: socks.kind === 'socks5' ? { ...socks.auth } : undefined }, {
      kind: 'socks5',
      bind: { host: '127.0.0.1', port: 25344 },
      auth: { username: 'alice', password: SECRET },
      origin: { file: 'w.conf', line: 11, section: 'Socks5' },
    });
    assert.deepEqual(http, { kind: 'http', bind: { host: '::1', port: 25345 }, origin: { file: 'w.conf', line: 16, section: 'http' } });
    assert.deepEqual(client, { kind: 'tcp-client', bind: { host: '127.0.0.1', port: 25565 }, target: { host: 'play.cubecraft.net', port: 25565 }, origin: { file: 'w.conf', line: 19, section: 'TCPClientTunnel' } });
    assert.deepEqual(server, { kind: 'tcp-server', port: 3422, target: { host: 'localhost', port: 25545 }, origin: { file: 'w.conf', line: 23, section: 'TCPServerTunnel' } });
    // ':5353' is every interface, as Go reads wireproxy's BindAddress.
    assert.deepEqual(udp, { kind: 'udp-client', bind: { host: '', port: 5353 }, target: { host: '10.200.200.1', port: 53 }, idleMs: 30_000, origin: { file: 'w.conf', line: 27, section: 'UDPProxyTunnel' } });
    assert.deepEqual(rules.map(describeRule), ['socks5 127.0.0.1:25344', 'http [::1]:25345', '-L 127.0.0.1:25565:play.cubecraft.net:25565', '-R 3422:localhost:25545', '-L :5353:10.200.200.1:53 udp']);
  });

  test('the tunnel part is the same as without the sections; sections may come before [Peer]', () => {
    const { config, rules } = parseWgQuickWithRules(`[Interface]\nPrivateKey = ${K1}\n[TCPClientTunnel]\nBindAddress = 127.0.0.1:1\nTarget = 10.0.0.1:22\n[Peer]\nPublicKey = ${K2}\nAllowedIPs = 10.0.0.0/8\n`);
    assert.equal(rules.length, 1);
    assert.equal(config.peers.length, 1);
    assert.deepEqual(config, parseWgQuick(`[Interface]\nPrivateKey = ${K1}\n[Peer]\nPublicKey = ${K2}\nAllowedIPs = 10.0.0.0/8\n`));
  });

  test('parseWgQuick (what Tunnel.create reads) rejects a listener section by name and line: a Tunnel opens no listeners', async () => {
    const text = `${HEAD}\n[Socks5]\nBindAddress = 127.0.0.1:1080\n`;
    assert.throws(() => parseWgQuick(text, { file: 'w.conf' }), /^ConfigError: w\.conf:10: \[Socks5\] is a listener section: a Tunnel opens no listeners; run this file with 'wgnet proxy -c' or 'wgnet forward -c', or remove the section$/);
    await assert.rejects(loadConfig(text), /:10: \[Socks5\] is a listener section/);
  });

  test('errors name file:line and the key', () => {
    const cases: [string, RegExp][] = [
      // A name with a run of 8+ base64 characters could be key material: its length only (values.ts isShowable).
      ['[Socks5]\nBindAdress = 127.0.0.1:1\n', /^w\.conf:10: unknown key \(name not shown: 10 characters\) in \[Socks5\] \(did you mean BindAddress\?\) \(expected BindAddress, Username, Password\)$/],
      ['[Socks5]\nBind = 127.0.0.1:1\n', /^w\.conf:10: unknown key Bind in \[Socks5\] \(expected BindAddress, Username, Password\)$/],
      ['[Socks5]\nTarget = 10.0.0.1:1\n', /^w\.conf:10: unknown key Target in \[Socks5\]/],
      ['[Socks5]\nUsername = a\n', /^w\.conf:9: \[Socks5\] needs BindAddress$/],
      ['[TCPClientTunnel]\nBindAddress = 127.0.0.1:1\n', /^w\.conf:9: \[TCPClientTunnel\] needs Target$/],
      ['[TCPServerTunnel]\nTarget = a:1\n', /^w\.conf:9: \[TCPServerTunnel\] needs ListenPort$/],
      ['[TCPClientTunnel]\nBindAddress = 127.0.0.1:1\nBindAddress = 127.0.0.1:2\nTarget = a:1\n', /^w\.conf:11: BindAddress: given twice in \[TCPClientTunnel\] \(first at line 10\)$/],
      ['[TCPClientTunnel]\nBindAddress = 127.0.0.1\nTarget = a:1\n', /^w\.conf:10: BindAddress: expected IP:PORT, \[IPv6\]:PORT, localhost:PORT or :PORT, got '127\.0\.0\.1'$/],
      ['[TCPClientTunnel]\nBindAddress = 127.0.0.1:70000\nTarget = a:1\n', /^w\.conf:10: BindAddress: port expected 0-65535, got 70000$/],
      ['[TCPClientTunnel]\nBindAddress = example.com:1\nTarget = a:1\n', /^w\.conf:10: BindAddress: expected IP:PORT/],
      ['[TCPClientTunnel]\nBindAddress = 127.0.0.1:1\nTarget = a\n', /^w\.conf:11: Target: expected host:port or \[IPv6\]:port, got 'a'$/],
      ['[TCPServerTunnel]\nListenPort = 0\nTarget = a:1\n', /^w\.conf:10: ListenPort: expected a number 1-65535, got '0'$/],
      ['[UDPProxyTunnel]\nBindAddress = 127.0.0.1:1\nTarget = a:1\nInactivityTimeout = soon\n', /^w\.conf:12: InactivityTimeout: expected a number 1-86400, got 'soon'$/],
      ['[Socks6]\n', /^w\.conf:9: unknown section \[Socks6\] \(did you mean \[Socks5\]\?\) \(expected \[Interface\], \[Peer\] or a listener section: \[Socks5\], \[http\], \[TCPClientTunnel\], \[TCPServerTunnel\], \[UDPProxyTunnel\]\)$/],
      ['[STDIOTunnel]\nTarget = a:22\n', /^w\.conf:9: \[STDIOTunnel\] is not supported/],
      ['[Socks5]\nBindAddress = 127.0.0.1:1\n[http]\nBindAddress = 127.0.0.1:1\n', /^w\.conf:11: BindAddress 127\.0\.0\.1:1 is already taken by \[Socks5\] at line 9$/],
      ['[TCPClientTunnel]\nBindAddress = :7\nTarget = a:1\n[Socks5]\nBindAddress = 127.0.0.1:7\n', /^w\.conf:12: BindAddress 127\.0\.0\.1:7 is already taken by \[TCPClientTunnel\] at line 9$/],
      ['[TCPServerTunnel]\nListenPort = 80\nTarget = a:1\n[TCPServerTunnel]\nListenPort = 80\nTarget = b:1\n', /^w\.conf:12: ListenPort 80 is already taken by \[TCPServerTunnel\] at line 9$/],
    ];
    for (const [body, re] of cases) assert.match(failure(body).message, re, body);
    // The same port for TCP and UDP, or port 0 twice, is no conflict.
    assert.equal(rulesOf('[TCPClientTunnel]\nBindAddress = 127.0.0.1:53\nTarget = a:53\n[UDPProxyTunnel]\nBindAddress = 127.0.0.1:53\nTarget = a:53\n[Socks5]\nBindAddress = 127.0.0.1:0\n[http]\nBindAddress = 127.0.0.1:0\n').length, 4);
    // wireproxy's include of a separate file is named.
    assert.throws(() => parseWgQuickWithRules(`WGConfig = /etc/wireguard/wg0.conf\n${HEAD}`, { file: 'w.conf' }), /^ConfigError: w\.conf:1: WGConfig: is not supported/);
  });

  test('credentials: both or neither, RFC 1929 lengths, never in an error, inspect or JSON', () => {
    const long = 'x'.repeat(300);
    const bodies = [
      `[Socks5]\nBindAddress = 127.0.0.1:1\nPassword = ${SECRET}\n`,
      `[Socks5]\nBindAddress = 127.0.0.1:1\nUsername = ${SECRET}\n`,
      `[Socks5]\nBindAddress = 127.0.0.1:1\nUsername = bob\nPassword = ${SECRET}${long}\n`,
      `[http]\nBindAddress = 127.0.0.1:1\nUsername = ${SECRET}:x\nPassword = ${SECRET}\n`,
      `[Socks5]\nBindAddress = 127.0.0.1:1\nPasword = ${SECRET}\n`,
      `[Socks5]\nBindAddress = 127.0.0.1:1\n${SECRET} = 1\n`,
      `[Socks5]\nBindAddress = 127.0.0.1:1\nUsername = bob\nPassword = ${SECRET}\nPassword = ${SECRET}\n`,
    ];
    const expected = [/:11: Password: needs Username too/, /:11: Username: needs Password too/, /:12: Password: expected 1-255 bytes, got 322 \(the value is not shown\)/, /:11: Username: must not contain ':'/, /:11: unknown key Pasword in \[Socks5\] \(did you mean Password\?\)/, /:11: unknown key \(name not shown: 22 characters\) in \[Socks5\]/, /:13: Password: given twice/];
    bodies.forEach((b, i) => {
      const e = failure(b);
      assert.match(e.message, expected[i]!);
      assert.ok(!e.message.includes(SECRET.slice(0, 8)), `no secret in: ${e.message}`);
    });
    const [r] = rulesOf(`[Socks5]\nBindAddress = 127.0.0.1:1\nUsername = bob\nPassword = ${SECRET}\n`);
    assert.ok(r?.kind === 'socks5' && r.auth?.password === SECRET);
    assert.ok(!inspect(r, { depth: 5 }).includes(SECRET), inspect(r));
    assert.ok(!JSON.stringify(r).includes(SECRET));
    assert.ok(!describeRule(r).includes('bob'));
  });

  test("ruleId: a rule's fields, not its place in the file; a new password is a new rule", () => {
    const a = rulesOf('[TCPClientTunnel]\nBindAddress = 127.0.0.1:1\nTarget = A.example:22\n')[0]!;
    const b = rulesOf('\n\n# moved down\n[tcpclienttunnel]\ntarget = a.example:22\nbindaddress = 127.0.0.1:1\n')[0]!;
    assert.equal(ruleId(a), ruleId(b));
    assert.notEqual(ruleId(a), ruleId(rulesOf('[TCPClientTunnel]\nBindAddress = 127.0.0.1:1\nTarget = a.example:23\n')[0]!));
    const s1 = rulesOf('[Socks5]\nBindAddress = 127.0.0.1:1\nUsername = u\nPassword = p1\n')[0]!;
    const s2 = rulesOf('[Socks5]\nBindAddress = 127.0.0.1:1\nUsername = u\nPassword = p2\n')[0]!;
    assert.notEqual(ruleId(s1), ruleId(s2));
  });
});
