/**
 * `pgweave rebalance`: spreads shards evenly from the shell, with a progress bar.
 *
 *   pgweave rebalance [--strategy by_shard_count|by_disk_size] [--drain-only]
 *                     [--mode auto|force_logical|block_writes] [--plan] [--url URL]
 *
 * It starts a background rebalance (citus_rebalance_start) and polls
 * get_rebalance_progress until the job ends; Ctrl-C stops the job
 * (citus_rebalance_stop), whose move in progress rolls back. `--plan` only
 * prints the moves. Connects like any client: --url, $DATABASE_URL, or the
 * local cluster in --dir.
 */
import type { Command } from 'commander';
import { clusterUrl, loadClusterState } from '../cluster/index.js';
import { Connection } from '../client/index.js';

interface RebalanceOpts {
  dir: string;
  url?: string;
  strategy?: string;
  drainOnly?: boolean;
  mode?: string;
  plan?: boolean;
}

function targetUrl(opts: RebalanceOpts): string {
  if (opts.url) return opts.url;
  if (process.env.DATABASE_URL) return process.env.DATABASE_URL;
  const state = loadClusterState(opts.dir);
  if (state === null) throw new Error(`no pgweave cluster in ${opts.dir}; pass --url or create one with \`pgweave up\``);
  return clusterUrl(state);
}

/** `[#####-----] 5/10 shard groups` — redrawn in place on a terminal. */
export function progressBar(done: number, total: number, width = 30): string {
  const filled = total === 0 ? width : Math.round((done / total) * width);
  return `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${done}/${total} shard groups`;
}

async function rebalance(opts: RebalanceOpts): Promise<void> {
  const conn = await Connection.open(targetUrl(opts));
  try {
    const strategy = opts.strategy ?? 'by_shard_count';
    if (opts.plan) {
      const plan = await conn.query('SELECT * FROM get_rebalance_table_shards_plan(drain_only => $1, rebalance_strategy => $2)', [String(!!opts.drainOnly), strategy]);
      for (const m of plan.rows) console.log(`${m.table_name} shard ${m.shardid} (${m.shard_size} bytes): ${m.sourcename}:${m.sourceport} -> ${m.targetname}:${m.targetport}`);
      console.log(`${plan.rows.length} moves`);
      return;
    }
    const job = await conn.query('SELECT citus_rebalance_start(rebalance_strategy => $1, drain_only => $2, shard_transfer_mode => $3) AS id', [
      strategy,
      String(!!opts.drainOnly),
      opts.mode ?? 'auto',
    ]);
    if (job.rows[0]?.id == null) {
      console.log('the cluster is balanced: nothing to move');
      return;
    }
    let stopping = false;
    const onSignal = () => {
      stopping = true;
      void conn.query('SELECT citus_rebalance_stop()').catch(() => {});
    };
    process.once('SIGINT', onSignal);
    const tty = process.stderr.isTTY;
    try {
      for (;;) {
        const progress = await conn.query('SELECT * FROM get_rebalance_progress()');
        const done = progress.rows.filter((r) => r.progress === '2').length;
        const moving = progress.rows.find((r) => r.progress === '1');
        const line = `${progressBar(done, progress.rows.length)}${moving ? `  moving ${moving.table_name} shard ${moving.shardid} to ${moving.targetname}:${moving.targetport}` : ''}`;
        if (tty) process.stderr.write(`\r\x1b[K${line}`);
        else process.stderr.write(line + '\n');
        const status = await conn.query('SELECT state, details FROM citus_rebalance_status()');
        const state = status.rows[0]?.state;
        if (state !== 'running' && state !== 'cancelling') {
          if (tty) process.stderr.write('\n');
          const blocked = (JSON.parse(status.rows[0]?.details ?? '{}') as { longest_blocked_ms?: number | null }).longest_blocked_ms;
          const blockedNote = blocked != null ? ` (writes blocked at most ${blocked} ms per cutover)` : '';
          console.log(`rebalance job ${job.rows[0]!.id}: ${state}${stopping ? ' (stopped)' : ''}${blockedNote}`);
          if (state === 'failed') process.exitCode = 1;
          return;
        }
        await new Promise((r) => setTimeout(r, 500));
      }
    } finally {
      process.off('SIGINT', onSignal);
    }
  } finally {
    conn.close();
  }
}

export function addRebalanceCommand(program: Command, dirOption: (cmd: Command) => Command): void {
  dirOption(program.command('rebalance').description('move shard groups until every node holds its share; shows progress (Ctrl-C stops)'))
    .option('--url <url>', 'connection string (default $DATABASE_URL, else the cluster in --dir)')
    .option('--strategy <name>', 'by_shard_count (default) or by_disk_size')
    .option('--drain-only', 'only move shards off nodes that should not have any')
    .option('--mode <mode>', 'shard_transfer_mode: auto, force_logical or block_writes')
    .option('--plan', 'print the moves without making them')
    .action(rebalance);
}
