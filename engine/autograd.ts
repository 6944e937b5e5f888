// Reverse-mode autograd on a tape, the one mechanism every model uses for its backward pass.
//
// A Var is a tensor in a computation: a Param (a model weight: f32 master value, optional f16 copy kept by
// the optimizer, f32 gradient accumulated across uses), or an activation produced by a differentiable
// function of engine/functional.ts, which records a Node on the Tape: its inputs, outputs, the Vars its
// backward needs (saved), and a closure that maps output gradients to input gradients.
//
// Memory: an activation's buffer is released as soon as nothing needs it any more — at the end of a
// scope() for values no node saved (forward-only temporaries), or during backward() right after the last
// node that saved it has run; output gradients are released after their node has run. Buffers go back to
// the stream-ordered pool, so the next kernels reuse them within the same submit.
//
// Gradient checkpointing: checkpoint(fn, inputs) runs fn without recording (only its inputs and output stay
// alive), and during backward re-runs fn on a fresh tape and backpropagates through that recording.
import { ShapeError, shapeStr } from './errors.js';
import type { Gpu } from './gpu.js';
import { add } from './ops/elementwise.js';
import { cast } from './ops/cast.js';
import { sameShape } from './ops/common.js';
import type { DType } from './dtype.js';
import type { Tensor } from './tensor.js';

export class Var {
  grad: Tensor | null = null;
  /** Nodes recorded on a tape that still need this value in backward. */
  saves = 0;
  /** The tape that owns this activation's buffer (null for inputs and params). */
  tape: Tape | null = null;
  constructor(
    public value: Tensor,
    readonly requiresGrad: boolean,
    readonly name: string,
  ) {}
  get shape(): readonly number[] {
    return this.value.shape;
  }
  get dtype(): DType {
    return this.value.dtype;
  }
  /** The value as an input to a kernel computing in `dtype` (Params hand out their f16 copy). */
  data(dtype: DType): Tensor {
    if (this.value.dtype === dtype) return this.value;
    throw new ShapeError(`${this.name} ${shapeStr(this.shape)} is ${this.value.dtype}, but the computation runs in ${dtype}; cast it first`);
  }
  toString(): string {
    return `${this.name} ${shapeStr(this.shape)} ${this.dtype}`;
  }
}

/** A trainable weight: f32 master value, f32 gradient, and (mixed precision) an f16 copy for the kernels. */
export class Param extends Var {
  /** f16 copy of value, written by the optimizer in the same pass as the update (mixed precision). */
  half: Tensor | null = null;
  constructor(value: Tensor, name: string, requiresGrad = true) {
    super(value, requiresGrad, name);
  }
  override data(dtype: DType): Tensor {
    if (dtype === this.value.dtype) return this.value;
    if (dtype === 'f16' && this.half) return this.half;
    throw new ShapeError(`parameter ${this.name} has no ${dtype} copy; call model.setComputeDtype('${dtype}') (or refreshHalf) before a ${dtype} forward`);
  }
  /** Rewrites the f16 copy from the master value. */
  refreshHalf(gpu: Gpu): void {
    this.half ??= gpu.tensor(this.value.shape, 'f16', `${this.name}.f16`);
    cast(gpu, this.value, 'f16', this.half);
  }
}

/** Input gradients of a node, aligned with its inputs (null: no gradient for that input). */
export type Backward = (gradOuts: (Tensor | null)[]) => (Tensor | null)[];

interface Node {
  name: string;
  inputs: Var[];
  outputs: Var[];
  saved: Var[];
  backward: Backward;
}

export class Tape {
  private nodes: Node[] = [];
  /** Activations created on this tape (their buffers belong to it). */
  private owned: Var[] = [];
  private recordingDepth = 0;

  constructor(
    readonly gpu: Gpu,
    /** Whether ops record backward nodes (false: inference; no gradients, temporaries freed by scope). */
    readonly grad = true,
  ) {}

  get recording(): boolean {
    return this.grad && this.recordingDepth === 0;
  }

  /** A non-trainable input (its tensor stays owned by the caller). */
  input(t: Tensor, name = t.name, requiresGrad = false): Var {
    return new Var(t, requiresGrad, name);
  }

  /** Wraps a new activation tensor produced by an op (owned by the tape). */
  result(t: Tensor, name: string, requiresGrad: boolean): Var {
    const v = new Var(t, requiresGrad && this.recording, name);
    v.tape = this;
    this.owned.push(v);
    return v;
  }

  /**
   * Records a node: `backward` receives the gradients of `outputs` (null where an output got none) and
   * returns the gradients of `inputs`. `saved` are the Vars whose values backward reads.
   */
  record(name: string, inputs: Var[], outputs: Var[], saved: Var[], backward: Backward, always = false): void {
    if (!this.recording || !(always || inputs.some((v) => v.requiresGrad))) return;
    for (const v of saved) v.saves++;
    this.nodes.push({ name, inputs, outputs, saved, backward });
  }

  /** Whether an op with these inputs records a node (its outputs then require gradients). */
  needsGrad(...inputs: Var[]): boolean {
    return this.recording && inputs.some((v) => v.requiresGrad);
  }

  /**
   * Runs fn; afterwards releases every activation created inside it that no node saved and that is not in
   * fn's result (forward-only temporaries).
   */
  scope<T extends Var | Var[]>(fn: () => T): T {
    const start = this.owned.length;
    const out = fn();
    const keep = new Set(Array.isArray(out) ? out : [out]);
    const inner = this.owned.splice(start);
    for (const v of inner) {
      if (keep.has(v) || v.saves > 0) this.owned.push(v);
      else v.value.release();
    }
    return out;
  }

  /** fn(...inputs) without saving its internals; recomputed in backward (gradient checkpointing). */
  checkpoint(name: string, fn: (tape: Tape, ...inputs: Var[]) => Var, inputs: Var[]): Var {
    if (!this.recording) return this.scope(() => fn(this, ...inputs));
    this.recordingDepth++;
    let out: Var;
    try {
      out = this.scope(() => fn(this, ...inputs));
    } finally {
      this.recordingDepth--;
    }
    const result = new Var(out.value, true, `${name}.out`);
    result.tape = this;
    this.owned[this.owned.indexOf(out)] = result;
    this.record(name, inputs, [result], inputs, ([g]) => {
      const sub = new Tape(this.gpu);
      const leaves = inputs.map((v) => new Var(v.value, v.requiresGrad, v.name));
      const y = fn(sub, ...leaves);
      sub.backward(y, g!, { keepSeed: true });
      const grads = leaves.map((l) => l.grad);
      sub.release();
      return grads;
    }, true); // params inside fn get their gradients from the recomputation, even if no input needs one
    return result;
  }

  /** Adds g to v.grad (taking ownership of g). */
  accumulate(v: Var, g: Tensor): void {
    if (!sameShape(g.shape, v.shape)) throw new ShapeError(`gradient of ${v} has shape ${shapeStr(g.shape)}`);
    if (v instanceof Param && g.dtype !== v.value.dtype) {
      const c = cast(this.gpu, g, v.value.dtype);
      g.release();
      g = c;
    }
    if (!v.grad) {
      v.grad = g;
      return;
    }
    const sum = add(this.gpu, v.grad, g);
    v.grad.release();
    g.release();
    v.grad = sum;
  }

  /**
   * Backpropagates `seed` (the gradient of `root`, e.g. dL/dL = 1 or a loss weight) through every node in
   * reverse order. Params accumulate into .grad; activations' buffers are released along the way.
   */
  backward(root: Var, seed: Tensor, opts: { keepSeed?: boolean } = {}): void {
    if (!sameShape(seed.shape, root.shape)) throw new ShapeError(`backward: seed ${seed} must have the shape of ${root}`);
    // forward-only values nobody saved are not needed any more
    for (const v of this.owned) if (v.saves === 0 && v !== root) v.value.release();
    root.grad = seed;
    for (let i = this.nodes.length - 1; i >= 0; i--) {
      const node = this.nodes[i]!;
      const gradOuts = node.outputs.map((o) => o.grad);
      if (gradOuts.some((g) => g)) {
        const gradIns = node.backward(gradOuts);
        if (gradIns.length !== node.inputs.length) throw new Error(`backward of ${node.name}: ${gradIns.length} gradients for ${node.inputs.length} inputs`);
        const handed = new Set<Tensor>();
        node.inputs.forEach((input, k) => {
          let g = gradIns[k];
          if (!g) return;
          if (!input.requiresGrad) {
            if (!gradOuts.includes(g)) g.release();
            return;
          }
          if (handed.has(g) || (opts.keepSeed && g === seed)) g = this.gpu.clone(g);
          handed.add(g);
          this.accumulate(input, g);
        });
        for (const o of node.outputs) {
          if (o.grad && !handed.has(o.grad) && !(opts.keepSeed && o.grad === seed)) o.grad.release();
          o.grad = null;
        }
      }
      for (const v of node.saved) {
        if (--v.saves === 0 && v.tape === this) v.value.release();
      }
    }
    this.nodes = [];
  }

  /** Hands an activation's tensor to the caller (release() will not free it); for keeping a forward's output. */
  take(v: Var): Tensor {
    const i = this.owned.indexOf(v);
    if (i < 0) throw new Error(`take: ${v} is not an activation of this tape`);
    this.owned.splice(i, 1);
    v.tape = null;
    return v.value;
  }

  /** Releases every activation still held (call when done with a forward's outputs). */
  release(): void {
    for (const v of this.owned) {
      v.value.release();
      if (v.grad) v.grad.release();
      v.grad = null;
    }
    this.owned = [];
    this.nodes = [];
  }
}

