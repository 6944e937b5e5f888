// WGSL templates → variants → compute pipelines.
// A shader file is a wgsl-preprocessor template: `${NAME}` inserts a define's value and `#if ${NAME}` /
// `#elif` / `#else` / `#endif` choose code by it. Defines come from the TS op, so every variant is a plain
// object of values, and the pipeline cache key is (shader, entry point, defines).
import { wgsl } from 'wgsl-preprocessor/wgsl-preprocessor.js';

export type Defines = Record<string, boolean | number | string>;

export interface ShaderSource {
  /** Short name used in labels and errors, e.g. "matmul". */
  name: string;
  /** Template text (the .wgsl file). */
  template: string;
}

export type BindingKind = 'read-only-storage' | 'storage' | 'uniform';

export interface Binding {
  index: number;
  kind: BindingKind;
  variable: string;
}

/** Renders one variant of a template. Throws when the template names a define that was not given. */
export function renderWgsl(shader: ShaderSource, defines: Defines): string {
  const parts = shader.template.split(/\$\{(\w+)\}/);
  const strings: string[] = [];
  const values: unknown[] = [];
  for (let i = 0; i < parts.length; i++) {
    if (i % 2 === 0) {
      strings.push(parts[i]!);
    } else {
      const name = parts[i]!;
      if (!(name in defines)) {
        throw new Error(`shaders/${shader.name}.wgsl uses \${${name}} but the op gave no value for it (defines: ${Object.keys(defines).join(', ') || 'none'})`);
      }
      const v = defines[name];
      values.push(typeof v === 'number' && !Number.isInteger(v) ? v.toExponential() : v);
    }
  }
  const raw = Object.assign([...strings], { raw: strings }) as unknown as TemplateStringsArray;
  return wgsl(raw, ...values);
}

const BINDING_RE = /@group\(0\)\s*@binding\((\d+)\)\s*var\s*<\s*(storage|uniform)\s*(?:,\s*(read|read_write)\s*)?>\s*(\w+)/g;

/** The group-0 bindings a rendered shader declares, in binding order. */
export function parseBindings(code: string): Binding[] {
  const out: Binding[] = [];
  for (const m of code.matchAll(BINDING_RE)) {
    const kind: BindingKind = m[2] === 'uniform' ? 'uniform' : m[3] === 'read_write' ? 'storage' : 'read-only-storage';
    out.push({ index: Number(m[1]), kind, variable: m[4]! });
  }
  out.sort((a, b) => a.index - b.index);
  return out;
}

/** Short, stable description of a variant for labels and profiles, e.g. "matmul.main[TRANS_B,GELU,BM=128]". */
export function variantLabel(shader: ShaderSource, entry: string, defines: Defines): string {
  const flags = Object.entries(defines)
    .filter(([, v]) => v !== false && v !== 0 && v !== '')
    .map(([k, v]) => (v === true ? k : `${k}=${v}`));
  return `${shader.name}.${entry}${flags.length ? `[${flags.join(',')}]` : ''}`;
}

export interface Kernel {
  label: string;
  pipeline: GPUComputePipeline;
  layout: GPUBindGroupLayout;
  bindings: Binding[];
  /** Storage bindings in order: the tensors a dispatch passes bind to these. */
  storage: Binding[];
  uniform?: Binding;
  /** Set once the GPU reports that this variant failed to compile or to create. */
  error?: Error;
}

/** Formats compiler messages with the offending source line, so a WGSL error is readable from the exception. */
export function formatCompilation(label: string, code: string, messages: readonly GPUCompilationMessage[]): string {
  const lines = code.split('\n');
  const body = messages
    .filter((m) => m.type === 'error')
    .map((m) => `  ${m.lineNum}:${m.linePos} ${m.message}\n    | ${(lines[m.lineNum - 1] ?? '').trim()}`)
    .join('\n');
  return `kernel ${label} failed to compile:\n${body}`;
}
