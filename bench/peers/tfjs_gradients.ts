/**
 * Gradient rules for the ten tfjs kernels the peer layer uses. Deno resolves
 * `npm:@tensorflow/tfjs-core` to its Node bundle (`dist/tf-core.node.js`), which registers no
 * gradients, and the ES module that registers them (`dist/register_all_gradients.js`) uses
 * extension-less relative imports that Deno's npm loader (like Node's) refuses. So the rules are
 * written here, after tfjs-core's own `src/gradients/*_grad.ts`, for exactly the shapes the layer
 * produces (no batch broadcasting in BatchMatMul). Dev-only (bench/peers); the comparison with our
 * kernels' gradients in the peer benchmark checks them.
 * @module
 */
// Dev-only peer: pinned inline so that deno.json (the engine's import map) never names tfjs.
import * as tf from "@tensorflow/tfjs-core";

type Attrs = Record<string, unknown>;

/** Sums `dy` over the axes along which `shape` was broadcast, then reshapes to `shape`. */
function unbroadcast(dy: tf.Tensor, shape: number[]): tf.Tensor {
  const axes = tf.backend_util.getReductionAxes(shape, dy.shape);
  return tf.reshape(axes.length > 0 ? tf.sum(dy, axes) : dy, shape);
}

const rules: tf.GradConfig[] = [
  {
    kernelName: tf.BatchMatMul,
    inputsToSave: ["a", "b"],
    gradFunc: (dy, saved, attrs: Attrs) => {
      const [a, b] = saved;
      const d = dy as tf.Tensor;
      const ta = attrs.transposeA === true, tb = attrs.transposeB === true;
      if (!ta && !tb) {
        return { a: () => tf.matMul(d, b, false, true), b: () => tf.matMul(a, d, true, false) };
      }
      if (!ta && tb) {
        return { a: () => tf.matMul(d, b, false, false), b: () => tf.matMul(d, a, true, false) };
      }
      if (ta && !tb) {
        return { a: () => tf.matMul(b, d, false, true), b: () => tf.matMul(a, d, false, false) };
      }
      return { a: () => tf.matMul(b, d, true, true), b: () => tf.matMul(d, a, true, true) };
    },
  },
  {
    kernelName: tf.Add,
    inputsToSave: ["a", "b"],
    gradFunc: (dy, saved) => ({
      a: () => unbroadcast(dy as tf.Tensor, saved[0].shape),
      b: () => unbroadcast(dy as tf.Tensor, saved[1].shape),
    }),
  },
  {
    kernelName: tf.Sub,
    inputsToSave: ["a", "b"],
    gradFunc: (dy, saved) => ({
      a: () => unbroadcast(dy as tf.Tensor, saved[0].shape),
      b: () => unbroadcast(tf.neg(dy as tf.Tensor), saved[1].shape),
    }),
  },
  {
    kernelName: tf.Multiply,
    inputsToSave: ["a", "b"],
    gradFunc: (dy, saved) => {
      const [a, b] = saved;
      return {
        a: () => unbroadcast(tf.mul(dy as tf.Tensor, b), a.shape),
        b: () => unbroadcast(tf.mul(dy as tf.Tensor, a), b.shape),
      };
    },
  },
  {
    kernelName: tf.Reshape,
    inputsToSave: ["x"],
    gradFunc: (dy, saved) => ({ x: () => tf.reshape(dy as tf.Tensor, saved[0].shape) }),
  },
  {
    kernelName: tf.Transpose,
    gradFunc: (dy, _saved, attrs: Attrs) => {
      const perm = attrs.perm as number[];
      const inverse = perm.map((_, i) => perm.indexOf(i));
      return { x: () => tf.transpose(dy as tf.Tensor, inverse) };
    },
  },
  {
    kernelName: tf.Softmax,
    outputsToSave: [true],
    gradFunc: (dy, saved, attrs: Attrs) => {
      const [y] = saved;
      const dim = attrs.dim as number;
      return {
        logits: () => {
          const dyY = tf.mul(dy as tf.Tensor, y);
          return tf.sub(dyY, tf.mul(tf.sum(dyY, [dim], true), y));
        },
      };
    },
  },
  {
    kernelName: tf.Erf,
    inputsToSave: ["x"],
    gradFunc: (dy, saved) => ({
      x: () =>
        tf.mul(
          dy as tf.Tensor,
          tf.mul(tf.exp(tf.neg(tf.square(saved[0]))), 2 / Math.sqrt(Math.PI)),
        ),
    }),
  },
  {
    kernelName: tf.Rsqrt,
    inputsToSave: ["x"],
    gradFunc: (dy, saved) => ({
      x: () => tf.neg(tf.div(dy as tf.Tensor, tf.mul(tf.pow(saved[0], 1.5), 2))),
    }),
  },
  {
    kernelName: tf.Mean,
    inputsToSave: ["x"],
    gradFunc: (dy, saved, attrs: Attrs) => {
      const [x] = saved;
      const axes = tf.util.parseAxisParam(attrs.axis as number | number[], x.shape);
      const size = axes.reduce((n, a) => n * x.shape[a], 1);
      const expanded = x.shape.map((d, i) => (axes.includes(i) ? 1 : d));
      return {
        x: () => tf.div(tf.mul(tf.reshape(dy as tf.Tensor, expanded), tf.ones(x.shape)), size),
      };
    },
  },
];

let registered = false;

/**
 * Registers the rules (once; a kernel that already has a gradient keeps it).
 *
 * @example
 * ```ts ignore
 * import { registerPeerGradients } from "./tfjs_gradients.ts";
 * registerPeerGradients();
 * ```
 */
export function registerPeerGradients(): void {
  if (registered) return;
  for (const r of rules) if (!tf.getGradient(r.kernelName)) tf.registerGradient(r);
  registered = true;
}
