// Row-wise L2 normalisation y = x / max(‖x‖, 1e-12) and its backward. One workgroup per row.
// @bindings generated from L2 in l2_norm.ts (uniforms p: Params { rows: u32, h: u32 }):
//   forward: x (read) → y, norm (read_write)
//   backward: x = dy, b_y, b_norm (read) → b_dx (read_write)

// Power of two.
override WG: u32 = 256u;
const MIN_NORM: f32 = 1e-12;
// #include "workgroup_reduce.wgsl"

@compute @workgroup_size(WG)
fn forward(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_index) lid: u32,
) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= p.rows) { return; }
  let base = row * p.h;
  var s = 0.0;
  for (var i = lid; i < p.h; i += WG) { s += x[base + i] * x[base + i]; }
  let n = max(sqrt(workgroup_sum(s, lid)), MIN_NORM);
  for (var i = lid; i < p.h; i += WG) { y[base + i] = x[base + i] / n; }
  if (lid == 0u) { norm[row] = n; }
}

// dx = (dy − y·(dy·y)) / norm; x binds dy here.
@compute @workgroup_size(WG)
fn backward(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_index) lid: u32,
) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= p.rows) { return; }
  let base = row * p.h;
  var s = 0.0;
  for (var i = lid; i < p.h; i += WG) { s += x[base + i] * b_y[base + i]; }
  let dot = workgroup_sum(s, lid);
  let n = b_norm[row];
  for (var i = lid; i < p.h; i += WG) { b_dx[base + i] = (x[base + i] - b_y[base + i] * dot) / n; }
}
