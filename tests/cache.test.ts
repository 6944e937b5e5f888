// data/cache.ts: a decoded-dataset cache returns exactly the samples and captions of the dataset it was made
// from; it refuses datasets that change between epochs, clips of the wrong shape, and unreadable files.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite, assertThrows } from './harness.js';
import { CachedDataset, writeDatasetCache } from '../data/cache.js';
import { VideoDataset } from '../data/dataset.js';
import { generateDataset } from '../data/synthetic.js';

const s = suite('cache');

s.test('round trip, refusals and errors', async ({ rng }) => {
  const dir = mkdtempSync(join(tmpdir(), 'cache-test-'));
  try {
    const { csvPath } = await generateDataset({ outDir: join(dir, 'data'), count: 3, frames: 4, size: 16, seed: rng.int(0, 1000) });
    const ds = await VideoDataset.open(csvPath, { numFrames: 4, imageSize: [16, 16] });
    const path = join(dir, 'cache.st.gz');
    await writeDatasetCache(path, ds);
    const cached = new CachedDataset(path);
    if (cached.length !== 3 || cached.sampleShape.join() !== '3,4,16,16') throw new Error(`cache holds ${cached.length} × [${cached.sampleShape}]`);
    for (let i = 0; i < 3; i++) {
      const want = (await ds.get(i, { epoch: 0 })).video;
      const got = new Float32Array(want.length).fill(NaN);
      const r = await cached.get(i, { epoch: 5, out: got });
      if (r.caption !== ds.entries[i]!.caption || r.index !== i) throw new Error(`sample ${i}: caption "${r.caption}"`);
      const bad = got.findIndex((v, k) => v !== want[k]);
      if (bad >= 0) throw new Error(`sample ${i} element ${bad}: ${got[bad]} vs ${want[bad]}`);
    }
    await assertThrows(() => cached.expectShape([3, 8, 16, 16], 'config tiny'), /holds clips of \[3,4,16,16\] but config tiny needs \[3,8,16,16\]/, 'wrong shape');
    const flipped = await VideoDataset.open(csvPath, { numFrames: 4, imageSize: [16, 16], randomFlip: true, seed: 1 });
    await assertThrows(() => writeDatasetCache(join(dir, 'flip.st.gz'), flipped), /varies between epochs/, 'flipping dataset');
    writeFileSync(join(dir, 'junk.st.gz'), 'not gzip');
    await assertThrows(() => new CachedDataset(join(dir, 'junk.st.gz')), /junk\.st\.gz is unreadable/, 'corrupt cache');
    await assertThrows(() => new CachedDataset(join(dir, 'none.st.gz')), /none\.st\.gz not found/, 'missing cache');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

s.run();
