/**
 * A private certificate authority made for one test run with `openssl`: a CA certificate and a
 * leaf it signed for the names given (subjectAltName, RFC 5280 §4.2.1.6), so a test can tell
 * "trusted through `ca`" from "unknown issuer" and "wrong name".
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface PrivateCa {
  /** The CA certificate (PEM): what a client passes as `ca`. */
  ca: string;
  /** The leaf's key and certificate (PEM), for the server. */
  key: string;
  cert: string;
}

function openssl(args: string[]): void {
  const r = spawnSync('openssl', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`openssl ${args[0]} failed: ${r.stderr}`);
}

/** `altNames` as subjectAltName entries, e.g. ['DNS:db.internal', 'IP:10.66.0.2']. */
export function privateCa(altNames: string[]): PrivateCa {
  // Files, not /dev/stdout: node's stdio pipes are sockets, which /dev/stdout cannot open.
  const dir = mkdtempSync(join(tmpdir(), 'wgnet-ca-'));
  const f = (name: string): string => join(dir, name);
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  try {
    openssl(['req', '-x509', ...ec, '-keyout', f('ca.key'), '-out', f('ca.pem'), '-subj', '/CN=wgnet test CA', '-days', '1',
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
    openssl(['req', ...ec, '-keyout', f('leaf.key'), '-out', f('leaf.csr'), '-subj', '/CN=wgnet test leaf']);
    writeFileSync(f('leaf.ext'), `subjectAltName=${altNames.join(',')}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n`);
    openssl(['x509', '-req', '-in', f('leaf.csr'), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial', '-out', f('leaf.pem'), '-days', '1', '-extfile', f('leaf.ext')]);
    return { ca: readFileSync(f('ca.pem'), 'utf8'), key: readFileSync(f('leaf.key'), 'utf8'), cert: readFileSync(f('leaf.pem'), 'utf8') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
