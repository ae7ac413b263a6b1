// Element-wise activations over flat f32 arrays: exact (erf) GELU and tanh, forward and backward.
// WGSL has no erf and its tanh may be built from sinh/cosh (overflow, poor accuracy near 0), so
// both are written out here with relative accuracy near 1e-7 in f32.
// @bindings generated from GELU in gelu.ts:
//   p: Params { count: u32 }
//   unary entries (gelu, tanh_forward): in0 (read) → out1 (read_write)
//   binary entries (gelu_backward, tanh_backward): in0, in1 (read) → out2 (read_write)

const WG: u32 = 256u;
// #include "erf.wgsl"

// tanh with relative error near 1e-7 (Cephes tanhf): an odd polynomial below 0.625, else
// 1 − 2/(e^{2|x|} + 1), where |x| is capped (tanh(10) rounds to 1 in f32).
fn tanh_f32(x: f32) -> f32 {
  let a = abs(x);
  if (a < 0.625) {
    let s = x * x;
    return x + x * s * ((((-5.70498872745e-3 * s + 2.06390887954e-2) * s - 5.37397155531e-2) * s
      + 1.33314422036e-1) * s - 3.33332819422e-1);
  }
  let e = exp(2.0 * min(a, 10.0));
  return sign(x) * (1.0 - 2.0 / (e + 1.0));
}

fn index(gid: vec3u, nwg: vec3u) -> u32 {
  return gid.x + gid.y * nwg.x * WG;
}

@compute @workgroup_size(WG)
fn gelu(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = index(gid, nwg);
  if (i >= p.count) { return; }
  let x = in0[i];
  out1[i] = x * normal_cdf(x);
}

// dx = dy·(Φ(x) + x·φ(x)); in0 = dy, in1 = x.
@compute @workgroup_size(WG)
fn gelu_backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = index(gid, nwg);
  if (i >= p.count) { return; }
  let x = in1[i];
  let xc = clamp(x, -20.0, 20.0); // φ(±20) underflows; keeps x² finite
  out2[i] = in0[i] * (normal_cdf(x) + xc * FRAC_1_SQRT_2PI * exp_accurate(-0.5 * xc * xc));
}

@compute @workgroup_size(WG)
fn tanh_forward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = index(gid, nwg);
  if (i >= p.count) { return; }
  out1[i] = tanh_f32(in0[i]);
}

// dx = dy·(1 − y²); in0 = dy, in1 = y.
@compute @workgroup_size(WG)
fn tanh_backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = index(gid, nwg);
  if (i >= p.count) { return; }
  let y = in1[i];
  out2[i] = in0[i] * (1.0 - y * y);
}
