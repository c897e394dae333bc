/**
 * What every benchmark needs around its measurement: free ports for the
 * PostgreSQL servers it starts, a one-line description of the machine, child
 * programs (psql, pgbench) run without blocking the event loop the
 * in-process coordinator shares, the `--priority` option, and medians of
 * rounds.
 */
import { execFile } from 'node:child_process';
import net from 'node:net';
import { cpus, freemem, totalmem } from 'node:os';

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

export function machineSummary(): string {
  const cpu = cpus();
  return `${cpu.length} CPU (${cpu[0]?.model ?? '?'}), ${(totalmem() / 2 ** 30).toFixed(1)} GiB RAM (${(freemem() / 2 ** 30).toFixed(1)} free), node ${process.version}`;
}

/** Runs a program without blocking the event loop: the coordinator shares this process. */
export function runProgram(cmd: string, args: string[]): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { maxBuffer: 64 << 20, env: { ...process.env, PGCONNECT_TIMEOUT: '10' } }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')} failed: ${err.message}\n${stderr}`));
      else resolve({ stdout, stderr });
    });
  });
}

/** The value of `--priority`: a nice value from -20 to 19. */
export function parsePriority(text: string | undefined): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < -20 || n > 19) throw new Error('--priority needs a nice value from -20 to 19');
  return n;
}

/** The median; of an even count, the mean of the middle two. */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}
