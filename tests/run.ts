// Test runner: loads tests/*.test.ts (optionally only those whose name contains an argument), runs them
// with uvu, and ends with one line `N passed, N failed, N skipped`; exits non-zero on any failure.
//   node dist/tests.mjs [name-filter …]       WEBGPU_DEVICE=gpu|swiftshader|llvmpipe  TEST_SEED=n
import './uvu-setup.js';
import { exec } from 'uvu';
import { files } from 'virtual:tests';
import { counts, describeDevice } from './harness.js';

const filters = process.argv.slice(2);
const selected = Object.entries(files as Record<string, () => Promise<unknown>>).filter(([name]) => !filters.length || filters.some((f) => name.includes(f)));

async function main(): Promise<number> {
  if (!selected.length) {
    console.log(`no test file matches ${filters.join(', ')}`);
    return 1;
  }
  const queue = (globalThis as unknown as { UVU_QUEUE: unknown[][] }).UVU_QUEUE;
  for (const [name, load] of selected) {
    (globalThis as unknown as { UVU_INDEX: number }).UVU_INDEX = queue.length;
    queue.push([name]);
    await load();
  }
  await exec();
  console.log(await describeDevice());
  console.log(`${counts.passed} passed, ${counts.failed} failed, ${counts.skipped} skipped`);
  return counts.failed || process.exitCode ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    console.error(e);
    console.log(`${counts.passed} passed, ${counts.failed + 1} failed, ${counts.skipped} skipped`);
    process.exit(1);
  },
);
