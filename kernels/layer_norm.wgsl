// LayerNorm over rows of length n, forward (optionally fused with a residual add) and backward.
// One workgroup per row; mean and variance in two passes (no E[x²] − E[x]² cancellation).
// dgamma/dbeta: fixed blocks of RB rows give partial column sums, then one thread per column
// adds the partials in order, so the result is deterministic.
// @bindings generated from LAYER_NORM in layer_norm.ts (each program at binding 0 its uniforms,
// then its storage arrays at 1, 2, … in this order; `…4` names are the vec4f views of one slot):
//   forward, forward_rows: p: Params { rows: u32, n: u32, eps: f32 }; x|x4, gamma|gamma4,
//     beta|beta4 (read), y|y4, mean, rstd (read_write)
//   add_forward, add_forward_rows: the same, then residual|residual4 (read), sum_out|sum4
//   backward_dx, backward_dx_rows: bp: Params_bp { rows: u32, n: u32 }; b_dy|b_dy4, b_x|b_x4,
//     b_mean, b_rstd, b_gamma|b_gamma4 (read), b_dx|b_dx4 (read_write)
//   backward_partials, backward_partials4: pp: Params_pp { rows: u32, n: u32, col_groups: u32,
//     blocks: u32 }; p_dy|p_dy4, p_x|p_x4, p_mean, p_rstd (read), partial|partial4
//   backward_params, backward_params4: fp: Params_fp { n: u32, blocks: u32 }; f_partial|f_partial4
//     (read), f_dgamma|f_dgamma4, f_dbeta|f_dbeta4 (read_write)

// Power of two.
override WG: u32 = 256u;
// #include "workgroup_reduce.wgsl"

fn row_of(wid: vec3u, nwg: vec3u) -> u32 {
  return wid.x + wid.y * nwg.x;
}

// Pass 1 (entry-specific) stores the row's values in `y` and returns this invocation's part of
// their sum; the rest reads them back from `y` (each invocation touches only its own elements).
fn finish(row: u32, lid: u32, partial_sum: f32) {
  let base = row * p.n;
  let m = workgroup_sum(partial_sum, lid) / f32(p.n);
  var q = 0.0;
  for (var i = lid; i < p.n; i += WG) {
    let d = y[base + i] - m;
    q += d * d;
  }
  let r = 1.0 / sqrt(workgroup_sum(q, lid) / f32(p.n) + p.eps);
  for (var i = lid; i < p.n; i += WG) {
    y[base + i] = (y[base + i] - m) * r * gamma[i] + beta[i];
  }
  if (lid == 0u) {
    mean[row] = m;
    rstd[row] = r;
  }
}

@compute @workgroup_size(WG)
fn forward(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_index) lid: u32,
) {
  let row = row_of(wid, nwg);
  if (row >= p.rows) { return; }
  let base = row * p.n;
  var s = 0.0;
  for (var i = lid; i < p.n; i += WG) {
    let v = x[base + i];
    y[base + i] = v;
    s += v;
  }
  finish(row, lid, s);
}

@compute @workgroup_size(WG)
fn add_forward(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_index) lid: u32,
) {
  let row = row_of(wid, nwg);
  if (row >= p.rows) { return; }
  let base = row * p.n;
  var s = 0.0;
  for (var i = lid; i < p.n; i += WG) {
    let v = x[base + i] + residual[base + i];
    sum_out[base + i] = v;
    y[base + i] = v;
    s += v;
  }
  finish(row, lid, s);
}

// ---------------------------------------------------------------- backward
// dx = rstd·(g − mean(g) − x̂·mean(g·x̂)) with g = dy·gamma, x̂ = (x − mean)·rstd.

@compute @workgroup_size(WG)
fn backward_dx(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_index) lid: u32,
) {
  let row = row_of(wid, nwg);
  if (row >= bp.rows) { return; }
  let base = row * bp.n;
  let m = b_mean[row];
  let r = b_rstd[row];
  var sg = 0.0;
  var sgx = 0.0;
  for (var i = lid; i < bp.n; i += WG) {
    let g = b_dy[base + i] * b_gamma[i];
    sg += g;
    sgx += g * (b_x[base + i] - m) * r;
  }
  let mg = workgroup_sum(sg, lid) / f32(bp.n);
  let mgx = workgroup_sum(sgx, lid) / f32(bp.n);
  for (var i = lid; i < bp.n; i += WG) {
    let g = b_dy[base + i] * b_gamma[i];
    let xh = (b_x[base + i] - m) * r;
    b_dx[base + i] = r * (g - mg - xh * mgx);
  }
}

// Rows per partial block of the parameter gradients (fixed: the summation order depends on it).
const RB: u32 = 32u;

// partial[(blk * n + c) * 2 + {0,1}] = Σ_{rows of block blk} (dy·x̂, dy) for column c.

@compute @workgroup_size(WG)
fn backward_partials(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_index) lid: u32,
) {
  let w = wid.x + wid.y * nwg.x;
  let blk = w / pp.col_groups;
  let c = (w % pp.col_groups) * WG + lid;
  if (blk >= pp.blocks || c >= pp.n) { return; }
  let r0 = blk * RB;
  let r1 = min(r0 + RB, pp.rows);
  var acc = vec2f(0.0);
  for (var r = r0; r < r1; r++) {
    let d = p_dy[r * pp.n + c];
    acc += vec2f(d * (p_x[r * pp.n + c] - p_mean[r]) * p_rstd[r], d);
  }
  partial[blk * pp.n + c] = acc;
}

@compute @workgroup_size(WG)
fn backward_params(@builtin(global_invocation_id) gid: vec3u) {
  let c = gid.x;
  if (c >= fp.n) { return; }
  var acc = vec2f(0.0);
  for (var b = 0u; b < fp.blocks; b++) { acc += f_partial[b * fp.n + c]; }
  f_dgamma[c] += acc.x;
  f_dbeta[c] += acc.y;
}

// ---------------------------------------------------------------- one row per invocation
// For rows whose length is a multiple of 4: each invocation walks its own row as vec4 (two-pass
// mean and variance, then the output), with no workgroup memory and no barriers. On lavapipe a
// workgroup's invocations are SIMD lanes of one CPU thread and every load or barrier step costs
// per lane, so this beats a workgroup per row by a wide margin (kernels/ATTENTION_NOTES.md).
// Rows are numbered `(wid.x + wid.y·nwg.x)·WG + lid`.

fn hsum4(v: vec4f) -> f32 {
  return (v.x + v.y) + (v.z + v.w);
}

fn row_id(wid: vec3u, nwg: vec3u, lid: u32) -> u32 {
  return (wid.x + wid.y * nwg.x) * WG + lid;
}

// Normalises the row already stored in y4 (pass 1 left its sum in `s`).
fn finish_row(row: u32, s: vec4f) {
  let n4 = p.n / 4u;
  let base = row * n4;
  let m = hsum4(s) / f32(p.n);
  var q = vec4f(0.0);
  for (var i = 0u; i < n4; i++) {
    let d = y4[base + i] - m;
    q += d * d;
  }
  let r = 1.0 / sqrt(hsum4(q) / f32(p.n) + p.eps);
  for (var i = 0u; i < n4; i++) {
    y4[base + i] = (y4[base + i] - m) * r * gamma4[i] + beta4[i];
  }
  mean[row] = m;
  rstd[row] = r;
}

@compute @workgroup_size(WG)
fn forward_rows(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_index) lid: u32,
) {
  let row = row_id(wid, nwg, lid);
  if (row >= p.rows) { return; }
  let base = row * (p.n / 4u);
  var s = vec4f(0.0);
  for (var i = 0u; i < p.n / 4u; i++) {
    let v = x4[base + i];
    y4[base + i] = v;
    s += v;
  }
  finish_row(row, s);
}

@compute @workgroup_size(WG)
fn add_forward_rows(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_index) lid: u32,
) {
  let row = row_id(wid, nwg, lid);
  if (row >= p.rows) { return; }
  let base = row * (p.n / 4u);
  var s = vec4f(0.0);
  for (var i = 0u; i < p.n / 4u; i++) {
    let v = x4[base + i] + residual4[base + i];
    sum4[base + i] = v;
    y4[base + i] = v;
    s += v;
  }
  finish_row(row, s);
}

@compute @workgroup_size(WG)
fn backward_dx_rows(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_index) lid: u32,
) {
  let row = (wid.x + wid.y * nwg.x) * WG + lid;
  if (row >= bp.rows) { return; }
  let n4 = bp.n / 4u;
  let base = row * n4;
  let m = b_mean[row];
  let r = b_rstd[row];
  var sg = vec4f(0.0);
  var sgx = vec4f(0.0);
  for (var i = 0u; i < n4; i++) {
    let g = b_dy4[base + i] * b_gamma4[i];
    sg += g;
    sgx += g * (b_x4[base + i] - m) * r;
  }
  let mg = hsum4(sg) / f32(bp.n);
  let mgx = hsum4(sgx) / f32(bp.n);
  for (var i = 0u; i < n4; i++) {
    let g = b_dy4[base + i] * b_gamma4[i];
    let xh = (b_x4[base + i] - m) * r;
    b_dx4[base + i] = r * (g - mg - xh * mgx);
  }
}

// The vec4 form of backward_partials: one invocation per (block, 4 columns), the same per-column
// order of additions. partial4[(blk · n/4 + c4) · 2 + {0, 1}] = (dgamma, dbeta) quads.

@compute @workgroup_size(WG)
fn backward_partials4(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_index) lid: u32,
) {
  let n4 = pp.n / 4u;
  let id = (wid.x + wid.y * nwg.x) * WG + lid;
  let blk = id / n4;
  let c = id % n4;
  if (blk >= pp.blocks) { return; }
  let r0 = blk * RB;
  let r1 = min(r0 + RB, pp.rows);
  var ag = vec4f(0.0);
  var ab = vec4f(0.0);
  for (var r = r0; r < r1; r++) {
    let d = p_dy4[r * n4 + c];
    ag += d * (p_x4[r * n4 + c] - p_mean[r]) * p_rstd[r];
    ab += d;
  }
  partial4[(blk * n4 + c) * 2u] = ag;
  partial4[(blk * n4 + c) * 2u + 1u] = ab;
}

@compute @workgroup_size(WG)
fn backward_params4(@builtin(global_invocation_id) gid: vec3u) {
  let n4 = fp.n / 4u;
  let c = gid.x;
  if (c >= n4) { return; }
  var ag = vec4f(0.0);
  var ab = vec4f(0.0);
  for (var b = 0u; b < fp.blocks; b++) {
    ag += f_partial4[(b * n4 + c) * 2u];
    ab += f_partial4[(b * n4 + c) * 2u + 1u];
  }
  f_dgamma4[c] += ag;
  f_dbeta4[c] += ab;
}
