import { loadModule, parseSync } from 'libpg-query';
import { deparseSync } from 'pgsql-deparser';
import { isDeepStrictEqual } from 'node:util';
await loadModule();
const strip = (o) => JSON.parse(JSON.stringify(o, (k, v) => (k === 'location' || k === 'stmt_location' || k === 'stmt_len' ? undefined : v)));
const qs = process.argv.slice(2);
for (const q of qs) {
  let tree; try { tree = parseSync(q); } catch (e) { console.log('INPUT ERR', q, e.message); continue; }
  const out = deparseSync(tree.stmts[0].stmt);
  let ok;
  try { ok = isDeepStrictEqual(strip(parseSync(out).stmts[0].stmt), strip(tree.stmts[0].stmt)); } catch (e) { ok = 'PARSE ERR ' + e.message; }
  console.log(ok === true ? 'OK ' : 'BAD', q, ok === true ? '' : '\n   => ' + out.replace(/\n/g, ' ') + ' ' + ok);
}
