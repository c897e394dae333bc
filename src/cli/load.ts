/**
 * `pgweave load TABLE FILE`: streams a file (or stdin, `-`) into a table
 * through `COPY … FROM STDIN` on the coordinator, as any client would
 * (src/client/copy-from.ts: flow-controlled, so memory stays bounded),
 * showing progress on stderr (progress-display.ts). The whole file is one
 * COPY: all rows or none. On a bad row the exit code is 1 and stderr has
 * PostgreSQL's message with its line (`CONTEXT:  COPY t, line 1234`).
 * On success stdout has the command tag (`COPY 1000`), as psql prints it.
 */
import { createReadStream, statSync } from 'node:fs';
import type { Readable } from 'node:stream';
import type { Command } from 'commander';
import { copyFromStatement, copyFromStream, PgError } from '../client/index.js';
import { ProgressDisplay } from './progress-display.js';
import { targetUrl, type ConnectOpts } from './target-url.js';

interface LoadOpts extends ConnectOpts {
  format: string;
  header?: boolean;
  delimiter?: string;
  null?: string;
  columns?: string;
  progress?: boolean;
}

/** PostgreSQL's error as psql shows it. */
function describeError(err: PgError): string {
  const f = err.fields;
  const lines = [`${f.severity ?? 'ERROR'}:  ${f.message}`];
  if (f.detail) lines.push(`DETAIL:  ${f.detail}`);
  if (f.hint) lines.push(`HINT:  ${f.hint}`);
  if (f.where) lines.push(`CONTEXT:  ${f.where}`);
  return lines.join('\n');
}

async function load(table: string, file: string, opts: LoadOpts): Promise<void> {
  const format = opts.format.toLowerCase();
  if (format !== 'text' && format !== 'csv' && format !== 'binary') throw new Error(`--format must be text, csv or binary, not ${opts.format}`);
  const sql = copyFromStatement(table, {
    format,
    header: opts.header,
    delimiter: opts.delimiter,
    null: opts.null,
    columns: opts.columns?.split(',').map((c) => c.trim()).filter((c) => c !== ''),
  });
  let source: Readable;
  let size: number | null = null;
  if (file === '-') source = process.stdin;
  else {
    const st = statSync(file); // a missing file fails here, with its name
    if (st.isFile()) size = st.size;
    source = createReadStream(file, { highWaterMark: 1 << 20 });
  }
  const display = opts.progress === false ? null : new ProgressDisplay(process.stderr, size);
  const countRows = format !== 'binary';
  let last = { bytes: 0, rows: countRows ? 0 : null as number | null };
  try {
    const result = await copyFromStream(targetUrl(opts), sql, source, {
      countRows,
      onData: (p) => {
        last = { bytes: p.bytes, rows: p.rows };
        display?.update(last);
      },
    });
    display?.finish({ bytes: result.bytes, rows: result.rows }, true);
    console.log(result.tag);
  } catch (err) {
    display?.finish(last, false);
    if (err instanceof PgError) {
      console.error(describeError(err));
      process.exitCode = 1;
      return;
    }
    throw err;
  }
}

export function addLoadCommand(program: Command, dirOption: (cmd: Command) => Command): void {
  dirOption(program.command('load').description('load a file into a table with COPY FROM STDIN (all rows or none), showing progress'))
    .argument('<table>', 'the table, as SQL names it: events, app.events, "MixedCase"')
    .argument('<file>', 'the file to load, or - for stdin')
    .option('--format <format>', 'text, csv or binary', 'text')
    .option('--header', 'the first line is a header (text and csv)')
    .option('--delimiter <char>', 'column delimiter (default: tab for text, comma for csv)')
    .option('--null <string>', 'the string that means NULL (default: \\N for text, empty for csv)')
    .option('--columns <list>', 'comma-separated columns the file holds, in order (default: all)')
    .option('--url <url>', 'connection string (default $DATABASE_URL, else the cluster in --dir)')
    .option('--no-progress', 'no progress output')
    .action(load);
}
