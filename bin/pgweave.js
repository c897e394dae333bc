#!/usr/bin/env node
// The `pgweave` command. The code lives in dist/ (built by `npm run build`,
// which `npm install` runs through the "prepare" script).
try {
  await import('../dist/src/cli/main.js');
} catch (err) {
  if (err && err.code === 'ERR_MODULE_NOT_FOUND' && String(err.message).includes('dist/src/cli/main.js')) {
    console.error('pgweave is not built yet: run `npm run build` (or `npm install`) in the pgweave directory first.');
    process.exit(1);
  }
  throw err;
}
