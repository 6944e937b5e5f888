// The browser bundle (dist/browser/engine.js) in headless Chromium on SwiftShader: device acquisition through
// navigator.gpu, upload, a matmul and a readback, checked against the f64 reference.
import { createServer } from 'node:http';
import { readFileSync, existsSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { suite, assertClose } from './harness.js';
import { matmulRef } from './ref/matmul.js';

const CHROMIUM = '/usr/bin/chromium';
const bundle = new URL('./browser/engine.js', import.meta.url);

const page = `<!doctype html><script type="module">
import { Gpu, matmul } from './engine.js';
window.run = async (a, b, M, N, K) => {
  const gpu = await Gpu.open({ device: 'browser', poison: true });
  const c = matmul(gpu, gpu.upload(a, [M, K]), gpu.upload(b, [K, N]), { transB: false });
  return { backend: gpu.info.backend, adapter: gpu.info.adapter, c: Array.from(await c.read()) };
};
window.ready = true;
</script>`;

const s = suite('browser');

s.gpuTest(
  'engine bundle runs a matmul in headless Chromium (navigator.gpu)',
  () => (existsSync(CHROMIUM) ? null : `${CHROMIUM} is missing (apt-get install -y chromium)`),
  async ({ rng }) => {
    if (!existsSync(bundle)) throw new Error(`${bundle.pathname} is missing: run node build.mjs`);
    const js = readFileSync(bundle);
    const server = createServer((req, res) => {
      if (req.url === '/engine.js') res.writeHead(200, { 'content-type': 'text/javascript' }).end(js);
      else if (req.url === '/') res.writeHead(200, { 'content-type': 'text/html' }).end(page);
      else res.writeHead(404).end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { chromium } = await import('playwright-core');
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--no-sandbox', '--enable-unsafe-webgpu', '--enable-features=Vulkan', '--use-angle=swiftshader', '--enable-unsafe-swiftshader',
        '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
    });
    try {
      const tab = await browser.newPage();
      await tab.goto(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`);
      await tab.waitForFunction(() => (window as unknown as { ready?: boolean }).ready === true, null, { timeout: 30000 });
      const [M, N, K] = [13, 21, 9];
      const a = Array.from(rng.normal(M * K));
      const b = Array.from(rng.normal(K * N));
      const got = await tab.evaluate(
        ([a, b, M, N, K]) => (window as unknown as { run: (...x: unknown[]) => Promise<{ backend: string; c: number[] }> }).run(a, b, M, N, K),
        [a, b, M, N, K] as const,
      );
      if (got.backend !== 'browser') throw new Error(`expected the browser backend, got ${got.backend}`);
      assertClose(got.c, matmulRef(a, b, { batch: 1, M, N, K }), { rtol: 1e-5, what: 'browser matmul' });
    } finally {
      await browser.close();
      server.close();
    }
  },
);

s.run();
