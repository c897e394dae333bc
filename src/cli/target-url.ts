/**
 * Where client-side commands (`streams`, `load`) connect: --url, else
 * $DATABASE_URL, else the local cluster in --dir (the URL `pgweave url` prints).
 */
import { clusterUrl, loadClusterState } from '../cluster/index.js';

export interface ConnectOpts {
  dir: string;
  url?: string;
}

export function targetUrl(opts: ConnectOpts): string {
  if (opts.url) return opts.url;
  if (process.env.DATABASE_URL) return process.env.DATABASE_URL;
  const state = loadClusterState(opts.dir);
  if (state === null) throw new Error(`no pgweave cluster in ${opts.dir}; pass --url or create one with \`pgweave up\``);
  return clusterUrl(state);
}
