// One AdamW step over a flat f32 parameter tensor, PyTorch semantics:
//   p ← p·(1 − lr·wd);  m ← b1·m + (1 − b1)·g;  v ← b2·v + (1 − b2)·g²;
//   p ← p − (lr / (1 − b1^t)) · m / (sqrt(v) / sqrt(1 − b2^t) + eps)
// `step_scaled` multiplies the gradient by the clip scale read on the GPU (norm_scale[1]), so
// clipping needs no host read-back, and skips the step when norm_scale[0] is not finite.
// Bias corrections come in as uniforms (they change per step).

// @bindings generated from ADAMW in adamw.ts:
//   p: Params { count: u32, decay: f32 (1 − lr·wd), beta1: f32, beta2: f32,
//     one_minus_beta1: f32, one_minus_beta2: f32 (computed in float64 on the host: 1 − f32(0.999)
//     is 1.3e-5 off), step_size: f32 (lr / (1 − b1^t)), bc2_sqrt: f32 (sqrt(1 − b2^t)), eps: f32 }
//   param (read_write), grad (read), m1, m2 (read_write); norm_scale (read; step_scaled only)

fn update(i: u32, g: f32) {
  let m = p.beta1 * m1[i] + p.one_minus_beta1 * g;
  let v = p.beta2 * m2[i] + p.one_minus_beta2 * g * g;
  m1[i] = m;
  m2[i] = v;
  param[i] = param[i] * p.decay - p.step_size * m / (sqrt(v) / p.bc2_sqrt + p.eps);
}

@compute @workgroup_size(256)
fn step(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i < p.count) { update(i, grad[i]); }
}

// NaN or ±Inf, tested on the bits: compilers may fold `x != x` away under fast-math rules.
fn non_finite(x: f32) -> bool {
  return (bitcast<u32>(x) & 0x7f800000u) == 0x7f800000u;
}

// A non-finite gradient norm (a NaN/Inf loss or an overflowing gradient) skips the whole update:
// weights and moments keep their last good values, and the host stops at its next read-back.
@compute @workgroup_size(256)
fn step_scaled(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i < p.count && !non_finite(norm_scale[0])) { update(i, grad[i] * norm_scale[1]); }
}
