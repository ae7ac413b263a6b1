// Row-wise L2 normalisation y = x / max(‖x‖, 1e-12) and its backward. One workgroup per row.
struct Params { rows: u32, h: u32 }
@group(0) @binding(0) var<uniform> p: Params;
// forward: x → (y, norm); backward: (dy, y, norm) → dx.
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read_write> norm: array<f32>;
@group(0) @binding(2) var<storage, read> b_y: array<f32>;
@group(0) @binding(3) var<storage, read> b_norm: array<f32>;
@group(0) @binding(4) var<storage, read_write> b_dx: array<f32>;

// Power of two.
override WG: u32 = 256u;
const MIN_NORM: f32 = 1e-12;
var<workgroup> red: array<f32, WG>;

fn workgroup_sum(v: f32, lid: u32) -> f32 {
  red[lid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s / 2u) {
    if (lid < s) { red[lid] += red[lid + s]; }
    workgroupBarrier();
  }
  let total = red[0];
  workgroupBarrier();
  return total;
}

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
