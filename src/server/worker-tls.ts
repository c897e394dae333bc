/**
 * Turns the config's `workerTls` into the process's TLS policy for node
 * connections (pool/backend-tls.ts): the CA, certificate and key files are
 * read once at start, so a missing or unreadable file stops the coordinator
 * with a clear message instead of failing every later connection.
 */
import { readFileSync } from 'node:fs';
import type { BackendTls, BackendTlsPolicy } from '../pool/backend-tls.js';
import type { CoordinatorConfig } from './config.js';

function readPem(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new Error(`workerTls.${what}: cannot read ${path}: ${(err as Error).message}`);
  }
}

/** The policy for `config`, or null when connections to nodes are plaintext. */
export function workerTlsPolicy(config: CoordinatorConfig): BackendTlsPolicy | null {
  const w = config.workerTls;
  if (!w) return null;
  if (!['require', 'verify-ca', 'verify-full'].includes(w.mode)) throw new Error(`workerTls.mode must be require, verify-ca or verify-full, not ${JSON.stringify(w.mode)}`);
  if (w.mode !== 'require' && !w.ca) throw new Error(`workerTls.mode ${w.mode} needs workerTls.ca, the CA that signed the nodes' certificates`);
  if (!!w.cert !== !!w.key) throw new Error('workerTls.cert and workerTls.key go together');
  const tls: BackendTls = {
    mode: w.mode,
    ca: w.ca ? readPem(w.ca, 'ca') : undefined,
    cert: w.cert ? readPem(w.cert, 'cert') : undefined,
    key: w.key ? readPem(w.key, 'key') : undefined,
  };
  const { host, port } = config.coordinator;
  return (h, p) => (w.coordinator || h !== host || p !== port ? tls : null);
}
