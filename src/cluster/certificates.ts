/**
 * TLS certificates for a local cluster's coordinator → worker traffic, made
 * by `pgweave up` when it creates a cluster, so a fresh cluster is encrypted
 * and verified by default (docs/security.md):
 *
 *   DIR/tls/ca.crt       a CA of this cluster only (the coordinator trusts it: workerTls.ca)
 *   DIR/tls/ca.key       its key (0600), kept to sign certificates for nodes added later
 *   DIR/tls/server.crt   the workers' certificate, signed by the CA, naming the
 *   DIR/tls/server.key   cluster's host (IP or DNS subject alternative name) and
 *                        localhost / 127.0.0.1 / ::1 (0600)
 *
 * With these the coordinator connects with verify-full: chain and host name
 * are both checked. openssl (PATH or /usr/bin/openssl) does the work; keys
 * never leave DIR/tls, whose mode is 0700.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';

export interface ClusterCertificates {
  ca: string;
  caKey: string;
  certFile: string;
  keyFile: string;
}

/** Ten years: a local cluster's CA and certificate should not expire under a running deployment. */
const VALID_DAYS = '3650';

function opensslBinary(): string {
  for (const dir of (process.env.PATH ?? '').split(':')) {
    if (dir && existsSync(join(dir, 'openssl'))) return join(dir, 'openssl');
  }
  if (existsSync('/usr/bin/openssl')) return '/usr/bin/openssl';
  throw new Error('openssl was not found (PATH, /usr/bin/openssl); it is needed to create the TLS certificates between the coordinator and the workers');
}

/** The subject alternative names of the workers' certificate. */
export function subjectAltNames(host: string): string {
  const names = new Set(['IP:127.0.0.1', 'IP:::1', 'DNS:localhost']);
  names.add(isIP(host) ? `IP:${host}` : `DNS:${host}`);
  return [...names].join(',');
}

/** Creates DIR/tls with a CA and a server certificate for `host`; returns the paths. */
export function createClusterCertificates(dir: string, host: string): ClusterCertificates {
  const tlsDir = join(dir, 'tls');
  mkdirSync(tlsDir, { recursive: true, mode: 0o700 });
  chmodSync(tlsDir, 0o700);
  const files: ClusterCertificates = {
    ca: join(tlsDir, 'ca.crt'),
    caKey: join(tlsDir, 'ca.key'),
    certFile: join(tlsDir, 'server.crt'),
    keyFile: join(tlsDir, 'server.key'),
  };
  const openssl = opensslBinary();
  const run = (...args: string[]) => {
    try {
      execFileSync(openssl, args, { cwd: tlsDir, stdio: ['ignore', 'ignore', 'pipe'] });
    } catch (err) {
      const stderr = (err as { stderr?: Buffer }).stderr?.toString().trim();
      throw new Error(`openssl ${args[0]} failed while creating the cluster's TLS certificates: ${stderr || (err as Error).message}`);
    }
  };
  const csr = join(tlsDir, 'server.csr');
  const ext = join(tlsDir, 'server.ext');
  const serial = join(tlsDir, 'ca.srl');
  try {
    run('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', files.caKey, '-out', files.ca, '-days', VALID_DAYS,
      '-subj', '/CN=pgweave cluster CA', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
    run('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', files.keyFile, '-out', csr, '-subj', '/CN=pgweave worker');
    writeFileSync(ext, `subjectAltName = ${subjectAltNames(host)}\nbasicConstraints = CA:FALSE\nextendedKeyUsage = serverAuth\n`);
    run('x509', '-req', '-in', csr, '-CA', files.ca, '-CAkey', files.caKey, '-CAcreateserial', '-CAserial', serial, '-out', files.certFile, '-days', VALID_DAYS, '-extfile', ext);
  } finally {
    for (const f of [csr, ext, serial]) rmSync(f, { force: true });
  }
  for (const key of [files.caKey, files.keyFile]) chmodSync(key, 0o600);
  for (const cert of [files.ca, files.certFile]) chmodSync(cert, 0o644);
  return files;
}
