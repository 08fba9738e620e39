#!/usr/bin/env node
/**
 * The `wgnet` command. Subcommands are listed in HELP; each has --help.
 */
import { getCryptoProvider } from '../crypto/index.js';
import { generatePrivateKey, generatePresharedKey, publicKeyFromPrivate } from '../crypto/keys.js';
import { systemRng } from '../io/clock.js';
import { parseKey, toBase64 } from '../util/bytes.js';
import { WgnetError } from '../util/errors.js';
import { backends, formatBackends } from '../io/backends.js';

const HELP = `Usage: wgnet <command> [options]

Commands:
  demo                 two tunnels over loopback: HTTP, ping and throughput through them
  genkey               print a new private key (as wg genkey)
  pubkey               read a private key on stdin, print its public key (as wg pubkey)
  genpsk               print a new preshared key (as wg genpsk)
  proxy -c FILE        SOCKS5 / HTTP proxy through the tunnel (no root)
  forward -c FILE      port forwards: -L local port -> tunnel host, -R tunnel port -> local service
  gateway -c FILE      WireGuard server whose peers reach any network through this host (no root)
  up [-f] IFNAME       WireGuard on a kernel TUN device (Linux, root): a drop-in for wireguard-go
  show [NAME]          the wg show view of interfaces with a UAPI socket (--uapi NAME, up, wireguard-go)

proxy and forward also run the listener sections of FILE, as wireproxy writes them ([Socks5], [http],
[TCPClientTunnel], [TCPServerTunnel], [UDPProxyTunnel]); SIGHUP applies a changed FILE.

Run 'wgnet help <command>' or 'wgnet <command> --help' for a command's options.`;

const HELP_TOPICS = ['demo', 'genkey', 'pubkey', 'genpsk', 'proxy', 'forward', 'gateway', 'up', 'show'];

const COMMAND_HELP: Record<string, string> = {
  demo: `Usage: wgnet demo [--megabytes N] [--crypto native|portable]

Brings up two WireGuard tunnels in this process over loopback UDP with fresh keys,
serves HTTP from one tunnel's TCP/IP stack, fetches it through the other, pings and
moves N MB (default 16). Needs no server and no root.

Example: wgnet demo --megabytes 64`,
  genkey: 'Usage: wgnet genkey\n\nExample: wgnet genkey > private.key',
  pubkey: 'Usage: wgnet pubkey < private.key\n\nExample: wgnet genkey | tee private.key | wgnet pubkey',
  genpsk: 'Usage: wgnet genpsk\n\nExample: wgnet genpsk > psk.key',
};

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function flag(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  if (i < 0) return undefined;
  const v = args[i + 1];
  if (v === undefined || v.startsWith('--')) throw new WgnetError('ERR_WGNET_INVALID_ARGUMENT', `${name} needs a value`);
  return v;
}

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...args] = argv;
  if (cmd === 'help' && args[0]) {
    // `wgnet help proxy` is `wgnet proxy --help`.
    if (!HELP_TOPICS.includes(args[0])) {
      process.stderr.write(`wgnet: no help for '${args[0].slice(0, 40)}': not a command\n\n${HELP}\n`);
      return 1;
    }
    return main([args[0], '--help']);
  }
  if (!cmd || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    process.stdout.write(HELP + '\n');
    return cmd ? 0 : 1;
  }
  if (cmd === '--version' || cmd === '-v') {
    // The version and the backends in use: the first thing to check when it is slow.
    process.stdout.write(formatBackends(backends()) + '\n');
    return 0;
  }
  if (args.includes('--help') || args.includes('-h')) {
    const h = COMMAND_HELP[cmd];
    if (h) {
      process.stdout.write(h + '\n');
      return 0;
    }
  }
  switch (cmd) {
    case 'genkey':
      process.stdout.write(toBase64(generatePrivateKey(systemRng)) + '\n');
      return 0;
    case 'genpsk':
      process.stdout.write(toBase64(generatePresharedKey(systemRng)) + '\n');
      return 0;
    case 'pubkey': {
      const text = (await readStdin()).trim();
      let key: Uint8Array;
      try {
        key = parseKey(text, 'private key');
      } catch {
        // wg pubkey's own wording, so scripts that match on it keep working.
        process.stderr.write('pubkey: Key is not the correct length or format\n');
        return 1;
      }
      process.stdout.write(toBase64(publicKeyFromPrivate(getCryptoProvider('auto'), key)) + '\n');
      return 0;
    }
    case 'demo': {
      const { runDemo } = await import('./demo.js');
      const mbText = flag(args, '--megabytes');
      const crypto = flag(args, '--crypto') as 'native' | 'portable' | undefined;
      await runDemo({ megabytes: mbText ? Number(mbText) : undefined, crypto });
      return 0;
    }
    case 'proxy':
    case 'forward': {
      const m = await import('./serve.js');
      if (args.includes('--help') || args.includes('-h')) {
        process.stdout.write((cmd === 'proxy' ? m.PROXY_USAGE : m.FORWARD_USAGE) + '\n');
        return 0;
      }
      return cmd === 'proxy' ? m.runProxy(args) : m.runForward(args);
    }
    case 'gateway': {
      const m = await import('./gateway.js');
      if (args.includes('--help') || args.includes('-h')) {
        process.stdout.write(m.GATEWAY_USAGE + '\n');
        return 0;
      }
      return m.runGateway(args);
    }
    case 'up': {
      const { runUp } = await import('./up.js');
      return runUp(args);
    }
    case 'show': {
      const { runShow, SHOW_USAGE } = await import('./show.js');
      if (args.includes('--help') || args.includes('-h')) {
        process.stdout.write(SHOW_USAGE + '\n');
        return 0;
      }
      const { UAPI_DIR } = await import('../io/uapi-server.js');
      return runShow(args, UAPI_DIR, (s) => process.stdout.write(s));
    }
    default:
      process.stderr.write(`wgnet: unknown command '${cmd}'\n\n${HELP}\n`);
      return 1;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: Error & { code?: string }) => {
    process.stderr.write(`wgnet: ${err.message}\n`);
    process.exitCode = 1;
  },
);
