import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startDdlCluster, type DdlCluster } from './ddl-support.js';
let c: DdlCluster;
before(async () => { c = await startDdlCluster(); });
after(async () => { await c?.stop(); });
const q = (sql: string, params?: unknown[]) => c.client.query(sql, params);
const step = async (name: string, p: Promise<unknown>) => {
  const t = setTimeout(() => console.log('STUCK at', name), 5000);
  try { await p; console.log('ok', name); } finally { clearTimeout(t); }
};
test('repro', { timeout: 30000 }, async () => {
  await q(`CREATE TABLE parent (id int PRIMARY KEY, v text); SELECT create_distributed_table('parent', 'id', shard_count => 4)`);
  await step('insert', q(`INSERT INTO parent VALUES (7, 'seven')`));
  await step('ext1', q(`SELECT $1::int AS x`, [1]));
  await step('grant', q(`GRANT SELECT ON parent TO public`));
  await step('ext2', q(`SELECT $1::int AS x`, [1]));
  await step('simple', q(`SELECT 1`));
});
