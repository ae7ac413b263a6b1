// Row softmax with an optional additive mask (one mask row shared by `rows_per_mask` consecutive
// rows), and its backward. One workgroup per row; max, sum and output in three passes.
// @bindings generated from SOFTMAX in softmax.ts:
//   p: Params { rows: u32, cols: u32, rows_per_mask: u32 }; x (read), y (read_write),
//   mask (read; forward_masked only)
//   backward: bp: Params_bp { rows: u32, cols: u32 }; b_dy, b_y (read), b_dx (read_write)

// Power of two.
override WG: u32 = 256u;
// #include "workgroup_reduce.wgsl"

// Passes 2 and 3 over the logits pass 1 stored in y (each invocation reads only its own).
fn finish(base: u32, lid: u32, local_max: f32) {
  let m = workgroup_max(local_max, lid);
  var s = 0.0;
  for (var i = lid; i < p.cols; i += WG) {
    let e = exp(y[base + i] - m);
    y[base + i] = e;
    s += e;
  }
  let inv = 1.0 / workgroup_sum(s, lid);
  for (var i = lid; i < p.cols; i += WG) { y[base + i] *= inv; }
}

@compute @workgroup_size(WG)
fn forward(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_index) lid: u32,
) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= p.rows) { return; }
  let base = row * p.cols;
  var m = -3.4028235e38;
  for (var i = lid; i < p.cols; i += WG) {
    let v = x[base + i];
    y[base + i] = v;
    m = max(m, v);
  }
  finish(base, lid, m);
}

@compute @workgroup_size(WG)
fn forward_masked(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_index) lid: u32,
) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= p.rows) { return; }
  let base = row * p.cols;
  let mbase = (row / p.rows_per_mask) * p.cols;
  var m = -3.4028235e38;
  for (var i = lid; i < p.cols; i += WG) {
    let v = x[base + i] + mask[mbase + i];
    y[base + i] = v;
    m = max(m, v);
  }
  finish(base, lid, m);
}

// dx = y·(dy − Σ dy·y).

@compute @workgroup_size(WG)
fn backward(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_index) lid: u32,
) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= bp.rows) { return; }
  let base = row * bp.cols;
  var s = 0.0;
  for (var i = lid; i < bp.cols; i += WG) { s += b_dy[base + i] * b_y[base + i]; }
  let dot = workgroup_sum(s, lid);
  for (var i = lid; i < bp.cols; i += WG) {
    b_dx[base + i] = b_y[base + i] * (b_dy[base + i] - dot);
  }
}
