// Sequence pooling of h[B, T, H]: token 0 ("CLS"), or the mean over real tokens (mask[B, T] = 1),
// forward and backward. One invocation per (sequence, column); token sums run in order.
// @bindings generated from POOLING in pooling.ts:
//   p: Params { b: u32, t: u32, h: u32 }
//   src (read), dst (read_write), mask (read; mean and mean_backward only)

const WG: u32 = 256u;
// Floor of the real-token count (as sentence-transformers' clamp): an empty sequence pools to 0.
const MIN_COUNT: f32 = 1e-9;

fn index(gid: vec3u, nwg: vec3u) -> u32 {
  return gid.x + gid.y * nwg.x * WG;
}

// dst[b, j] = src[b, 0, j].
@compute @workgroup_size(WG)
fn first(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = index(gid, nwg);
  if (i >= p.b * p.h) { return; }
  let b = i / p.h;
  dst[i] = src[b * p.t * p.h + (i - b * p.h)];
}

// dst[b, t, j] = t == 0 ? src[b, j] : 0; one invocation per element of dst.
@compute @workgroup_size(WG)
fn first_backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = index(gid, nwg);
  if (i >= p.b * p.t * p.h) { return; }
  let j = i % p.h;
  let bt = i / p.h;
  let t = bt % p.t;
  if (t == 0u) { dst[i] = src[(bt / p.t) * p.h + j]; } else { dst[i] = 0.0; }
}

fn count_of(b: u32) -> f32 {
  var c = 0.0;
  for (var t = 0u; t < p.t; t++) { c += mask[b * p.t + t]; }
  return max(c, MIN_COUNT);
}

// dst[b, j] = Σ_t mask[b, t]·src[b, t, j] / Σ_t mask[b, t].
@compute @workgroup_size(WG)
fn mean(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = index(gid, nwg);
  if (i >= p.b * p.h) { return; }
  let b = i / p.h;
  let j = i - b * p.h;
  var s = 0.0;
  for (var t = 0u; t < p.t; t++) {
    let m = mask[b * p.t + t];
    if (m != 0.0) { s += m * src[(b * p.t + t) * p.h + j]; }
  }
  dst[i] = s / count_of(b);
}

// dst[b, t, j] = mask[b, t]·src[b, j] / Σ_t mask[b, t]; one invocation per (b, j) walks t.
@compute @workgroup_size(WG)
fn mean_backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = index(gid, nwg);
  if (i >= p.b * p.h) { return; }
  let b = i / p.h;
  let j = i - b * p.h;
  let g = src[i] / count_of(b);
  for (var t = 0u; t < p.t; t++) {
    dst[(b * p.t + t) * p.h + j] = mask[b * p.t + t] * g;
  }
}
