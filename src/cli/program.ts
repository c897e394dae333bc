/**
 * The `pgweave` command's subcommands: a local cluster in one command (`up`), then `status`,
 * `url`, `psql`, `down`; `load` and `streams` (client-side, load.ts and
 * streams.ts); and `serve`, the coordinator process that `up` starts in the
 * background.
 *
 * This file only parses arguments and prints; the lifecycle itself lives in
 * src/cluster (so tests and other tools drive the same code), and the
 * coordinator in src/server. The URL is the last line `up` prints, on stdout,
 * so `pgweave up | tail -1` yields it; progress and warnings go to stderr.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, InvalidArgumentError } from 'commander';
import {
  DEFAULT_PORT,
  DEFAULT_WORKERS,
  clusterStatus,
  clusterUrl,
  downCluster,
  loadClusterState,
  psqlEnv,
  psqlPath,
  upCluster,
  type ClusterState,
  type ProcessStatus,
} from '../cluster/index.js';
import { socketPath } from '../pool/node-sockets.js';
import { runServe } from './serve.js';
import { addStreamsCommands } from './streams.js';
import { addLoadCommand } from './load.js';
import { addRebalanceCommand } from './rebalance.js';

/** bin/pgweave.js, run again (as `serve`) for the detached coordinator process. */
const BIN_PATH = fileURLToPath(new URL('../../../bin/pgweave.js', import.meta.url));

function defaultDir(): string {
  return process.env.PGWEAVE_DIR ?? join(homedir(), '.pgweave', 'default');
}

function parseInteger(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n)) throw new InvalidArgumentError('not a whole number');
  return n;
}

/** The cluster in DIR, or an error that says how to create one. */
function requireCluster(dir: string): ClusterState {
  const state = loadClusterState(dir);
  if (state === null) throw new Error(`no pgweave cluster in ${dir}; create one with \`pgweave up --dir ${dir}\``);
  return state;
}

function describeProcess(p: ProcessStatus): string {
  const what = p.role === 'coordinator-process' ? 'pgweave coordinator' : p.role === 'coordinator' ? 'coordinator postgres' : `${p.name} postgres`;
  const pid = p.pid === null ? 'not running' : `pid ${p.pid}`;
  const health = p.healthy ? 'healthy' : 'UNHEALTHY';
  const where = p.dataDir ? `data ${p.dataDir}` : `log ${p.logFile}`;
  return `${what.padEnd(22)} ${`${p.host}:${p.port}`.padEnd(16)} ${pid.padEnd(12)} ${health.padEnd(9)} ${where}`;
}

async function up(opts: { dir: string; port: number; workers: number; fast?: boolean; workerTls: boolean }): Promise<void> {
  const result = await upCluster({
    dir: opts.dir,
    port: opts.port,
    workers: opts.workers,
    fast: opts.fast ?? false,
    workerTls: opts.workerTls,
    coordinatorCommand: (configFile) => ({ file: process.execPath, args: [BIN_PATH, 'serve', '--config', configFile] }),
    progress: (line) => console.error(line),
  });
  for (const warning of result.warnings) console.error(`warning: ${warning}`);
  if (result.state.storageDir) console.error(`PostgreSQL data lives in ${result.state.storageDir} (the postgres user cannot reach ${result.state.dir})`);
  for (const p of result.processes) console.log(describeProcess(p));
  console.log(clusterUrl(result.state));
}

async function status(opts: { dir: string; json?: boolean }): Promise<void> {
  const found = await clusterStatus(opts.dir);
  if (found === null) throw new Error(`no pgweave cluster in ${opts.dir}`);
  const allHealthy = found.processes.every((p) => p.healthy);
  if (opts.json) {
    console.log(JSON.stringify({ dir: found.state.dir, healthy: allHealthy, processes: found.processes }, null, 2));
  } else {
    console.log(`cluster ${found.state.dir}: ${allHealthy ? 'healthy' : 'NOT healthy'}`);
    for (const p of found.processes) console.log(describeProcess(p));
  }
  if (!allHealthy) process.exitCode = 1;
}

async function down(opts: { dir: string }): Promise<void> {
  const result = await downCluster(opts.dir);
  if (result === null) throw new Error(`no pgweave cluster in ${opts.dir}`);
  console.log(`stopped the cluster in ${result.state.dir}${result.coordinatorStopped ? '' : ' (the coordinator process was not running)'}`);
}

function url(opts: { dir: string }): void {
  const state = requireCluster(opts.dir);
  console.error('warning: this URL contains the cluster superuser password');
  console.log(clusterUrl(state));
}

/** Runs psql against the coordinator; the password travels in PGPASSWORD, not on the command line. */
async function psql(args: string[], opts: { dir: string }): Promise<void> {
  const state = requireCluster(opts.dir);
  // The coordinator's Unix-domain socket when it has one (cheaper than loopback TCP), else its TCP address.
  const socket = state.socketDir && existsSync(socketPath(state.socketDir, state.listen.port)) ? state.socketDir : null;
  const target = socket
    ? `postgres://${encodeURIComponent(state.clientUser)}@/postgres?host=${encodeURIComponent(socket)}&port=${state.listen.port}`
    : `postgres://${encodeURIComponent(state.clientUser)}@${state.listen.host}:${state.listen.port}/postgres`;
  const child = spawn(psqlPath(), [target, ...args], { stdio: 'inherit', env: psqlEnv(state.clientPassword, { PGAPPNAME: 'psql' }) });
  // Ctrl-C belongs to psql (it cancels the query); this process just waits.
  const ignore = () => {};
  process.on('SIGINT', ignore);
  const code = await new Promise<number>((resolve, reject) => {
    child.on('error', (err) => reject(new Error(`cannot run psql: ${err.message}`)));
    child.on('exit', (exitCode, signal) => resolve(exitCode ?? (signal ? 128 + 2 : 1)));
  });
  process.off('SIGINT', ignore);
  process.exitCode = code;
}

export function buildProgram(): Command {
  const program = new Command('pgweave')
    .description('A distributed PostgreSQL: one logical database over many PostgreSQL servers')
    .enablePositionalOptions()
    .showHelpAfterError();
  const dirOption = (cmd: Command) => cmd.option('--dir <dir>', 'cluster directory (env PGWEAVE_DIR)', defaultDir());

  dirOption(program.command('up').description('create (if needed) and start a local cluster; prints the connection URL last'))
    .option('--port <port>', 'coordinator port; its PostgreSQL uses PORT+1, workers PORT+2…', parseInteger, DEFAULT_PORT)
    .option('--workers <n>', 'number of worker PostgreSQL servers (at creation)', parseInteger, DEFAULT_WORKERS)
    .option('--fast', 'unsafe durability settings (fsync=off…), for tests and demos')
    .option('--no-worker-tls', 'at creation: plaintext between the coordinator and the workers (default: TLS with a CA of the cluster, verify-full)')
    .action(up);

  dirOption(program.command('status').description('every process of the cluster: role, address, pid, health'))
    .option('--json', 'machine-readable output')
    .action(status);

  dirOption(program.command('down').description('stop the coordinator process and every PostgreSQL of the cluster')).action(down);

  dirOption(program.command('url').description('print the connection URL (it contains the password)')).action(url);

  dirOption(program.command('psql').description('run psql against the cluster; arguments after -- go to psql'))
    .argument('[psql-args...]')
    .allowUnknownOption()
    .passThroughOptions()
    .action(psql);

  program
    .command('serve')
    .description('run the coordinator in the foreground (what `up` starts in the background)')
    .requiredOption('--config <file>', 'a pgweave.json CoordinatorConfig')
    .action((opts: { config: string }) => runServe(opts.config));

  addStreamsCommands(program, dirOption);
  addLoadCommand(program, dirOption);
  addRebalanceCommand(program, dirOption);

  return program;
}

/** Runs the command line; failures print one line (no stack) and set exit code 1. */
export async function runCli(argv: string[]): Promise<void> {
  try {
    await buildProgram().parseAsync(argv);
  } catch (err) {
    console.error(`pgweave: ${(err as Error).message}`);
    process.exitCode = 1;
  }
}
