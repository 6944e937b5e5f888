// Bundles the TypeScript sources with esbuild (Node 20 runs no TypeScript by itself).
//   node build.mjs            → dist/tests.mjs, dist/bench/*.mjs, dist/examples/*.mjs, dist/cli/*.mjs (Node, `webgpu` external)
//                               and dist/browser/engine.js (browser: navigator.gpu, no Dawn)
//   node build.mjs --watch    → the same, rebuilt on change
// WGSL files are imported as text; tests/*.test.ts are collected into one runner.
import * as esbuild from 'esbuild';
import { readdirSync, existsSync } from 'node:fs';
import { resolve, basename } from 'node:path';

const root = resolve(import.meta.dirname ?? new URL('.', import.meta.url).pathname);
const list = (dir, suffix) =>
  existsSync(resolve(root, dir)) ? readdirSync(resolve(root, dir)).filter((f) => f.endsWith(suffix)).sort() : [];

// `import { files } from 'virtual:tests'`: every tests/*.test.ts, loaded lazily by name.
const testsPlugin = {
  name: 'tests',
  setup(build) {
    build.onResolve({ filter: /^virtual:tests$/ }, () => ({ path: 'tests', namespace: 'virtual' }));
    build.onLoad({ filter: /.*/, namespace: 'virtual' }, () => {
      const files = list('tests', '.test.ts');
      const entries = files.map((f) => `  ${JSON.stringify(basename(f, '.test.ts'))}: () => import(${JSON.stringify(resolve(root, 'tests', f))}),`);
      return { contents: `export const files = {\n${entries.join('\n')}\n};\n`, resolveDir: root, loader: 'js' };
    });
  },
};

// In the browser bundle, Dawn (engine/dawn.ts) is replaced by a stub: WebGPU comes from navigator.gpu.
const browserPlugin = {
  name: 'browser-dawn',
  setup(build) {
    build.onResolve({ filter: /\/dawn\.js$/ }, () => ({ path: resolve(root, 'engine/dawn-browser.ts') }));
  },
};

const common = {
  bundle: true,
  sourcemap: 'linked',
  loader: { '.wgsl': 'text' },
  logLevel: 'warning',
  legalComments: 'none',
};

const node = {
  ...common,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  external: ['webgpu', 'playwright-core'],
  outExtension: { '.js': '.mjs' },
  // Some bundled CommonJS dependencies call require(); give ESM output one.
  banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
};

const builds = [
  { ...node, entryPoints: { tests: 'tests/run.ts' }, outdir: 'dist', plugins: [testsPlugin] },
  {
    ...node,
    entryPoints: Object.fromEntries([
      ...list('bench', '.ts').filter((f) => !f.startsWith('_')).map((f) => [`bench/${basename(f, '.ts')}`, `bench/${f}`]),
      ...list('examples', '.ts').map((f) => [`examples/${basename(f, '.ts')}`, `examples/${f}`]),
      ...list('cli', '.ts').filter((f) => !f.startsWith('_')).map((f) => [`cli/${basename(f, '.ts')}`, `cli/${f}`]),
    ]),
    outdir: 'dist',
  },
  {
    ...common,
    platform: 'browser',
    format: 'esm',
    target: 'es2022',
    entryPoints: { engine: 'engine/index.ts' },
    outdir: 'dist/browser',
    plugins: [browserPlugin],
  },
].filter((b) => Object.keys(b.entryPoints).length);

if (process.argv.includes('--watch')) {
  for (const b of builds) await (await esbuild.context(b)).watch();
  console.log('watching…');
} else {
  await Promise.all(builds.map((b) => esbuild.build(b)));
}
