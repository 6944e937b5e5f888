// copy16 (the bandwidth-ceiling kernel): exact copy of random words, grid-stride over many workgroups.
import { suite, assertClose, assertThrows } from './harness.js';
import { copy16 } from '../engine/ops/copy.js';

const s = suite('copy');

s.test('copies every 16-byte vector exactly (grid-stride with few workgroups)', async ({ gpu, rng }) => {
  for (const [n, wg] of [[4, 1], [4 * 1000, 3], [4 * 70001, 1024]] as const) {
    const data = rng.normal(n);
    const src = gpu.upload(data, [n]);
    const dst = gpu.tensor([n]);
    copy16(gpu, src, dst, wg);
    assertClose(await dst.read(), data, { rtol: 0, what: `copy ${n} floats over ${wg} workgroups` });
    src.release();
    dst.release();
  }
});

s.test('size mismatch is a clear error', async ({ gpu }) => {
  await assertThrows(() => copy16(gpu, gpu.tensor([8]), gpu.tensor([12])), /same byte size, a multiple of 16/, 'sizes');
  await assertThrows(() => copy16(gpu, gpu.tensor([3]), gpu.tensor([3])), /multiple of 16/, 'not 16-byte');
});

s.run();
