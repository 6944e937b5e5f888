declare module 'virtual:tests' {
  /** Every tests/*.test.ts by name, loaded on demand (build.mjs). */
  export const files: Record<string, () => Promise<unknown>>;
}
