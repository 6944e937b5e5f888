// WGSL sources are bundled as text by esbuild (build.mjs: loader '.wgsl' → 'text').
declare module '*.wgsl' {
  const source: string;
  export default source;
}

declare module 'wgsl-preprocessor/wgsl-preprocessor.js' {  // the package has no main field
  export function wgsl(strings: TemplateStringsArray, ...values: unknown[]): string;
}
