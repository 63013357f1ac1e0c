// Compiles src/ and test/unit/ with tsc into out/, builds dist/, and runs every test/unit/**/*.test.js with node:test.
// Usage: npm run test:unit [-- name-filter]
import { execFileSync, spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

try {
  execFileSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.json'], { stdio: 'inherit' });
} catch {
  console.error('type errors: see above');
  process.exit(1);
}
// dist/ too: the launcher's tests run bin/mechanist.js, which runs dist/cli.js.
try {
  execFileSync(process.execPath, ['scripts/build.mjs'], { stdio: ['ignore', 'ignore', 'inherit'] });
} catch {
  console.error('build failed: see above');
  process.exit(1);
}

function find(dir) {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? find(p) : p.endsWith('.test.js') ? [p] : [];
  });
}
const filter = process.argv[2];
const files = find('out/test/unit').filter((f) => !filter || f.includes(filter)).sort();
if (files.length === 0) {
  console.error('no unit test files found');
  process.exit(1);
}
const r = spawnSync(process.execPath, ['--test', '--test-reporter=spec', ...files], {
  stdio: 'inherit',
  env: { ...process.env, TMPDIR: process.env.MECHANIST_TEST_TMP ?? process.env.TMPDIR },
});
process.exit(r.status ?? 1);
