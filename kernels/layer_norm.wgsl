// LayerNorm over rows of length n, forward (optionally fused with a residual add) and backward.
// One workgroup per row; mean and variance in two passes (no E[x²] − E[x]² cancellation).
// dgamma/dbeta: fixed blocks of RB rows give partial column sums, then one thread per column
// adds the partials in order, so the result is deterministic.
struct Params { rows: u32, n: u32, eps: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> gamma: array<f32>;
@group(0) @binding(3) var<storage, read> beta: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<storage, read_write> mean: array<f32>;
@group(0) @binding(6) var<storage, read_write> rstd: array<f32>;
// addLayerNorm only.
@group(0) @binding(7) var<storage, read> residual: array<f32>;
@group(0) @binding(8) var<storage, read_write> sum_out: array<f32>;

// Power of two.
override WG: u32 = 256u;
var<workgroup> red: array<f32, WG>;

// Sum of `v` over the workgroup (every invocation gets the result).
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
struct BackParams { rows: u32, n: u32 }
@group(0) @binding(0) var<uniform> bp: BackParams;
@group(0) @binding(1) var<storage, read> b_dy: array<f32>;
@group(0) @binding(2) var<storage, read> b_x: array<f32>;
@group(0) @binding(3) var<storage, read> b_mean: array<f32>;
@group(0) @binding(4) var<storage, read> b_rstd: array<f32>;
@group(0) @binding(5) var<storage, read> b_gamma: array<f32>;
@group(0) @binding(6) var<storage, read_write> b_dx: array<f32>;

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
struct PartialParams { rows: u32, n: u32, col_groups: u32, blocks: u32 }
@group(0) @binding(0) var<uniform> pp: PartialParams;
@group(0) @binding(1) var<storage, read> p_dy: array<f32>;
@group(0) @binding(2) var<storage, read> p_x: array<f32>;
@group(0) @binding(3) var<storage, read> p_mean: array<f32>;
@group(0) @binding(4) var<storage, read> p_rstd: array<f32>;
@group(0) @binding(5) var<storage, read_write> partial: array<vec2f>;

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

struct FinishParams { n: u32, blocks: u32 }
@group(0) @binding(0) var<uniform> fp: FinishParams;
@group(0) @binding(1) var<storage, read> f_partial: array<vec2f>;
@group(0) @binding(2) var<storage, read_write> f_dgamma: array<f32>;
@group(0) @binding(3) var<storage, read_write> f_dbeta: array<f32>;

@compute @workgroup_size(WG)
fn backward_params(@builtin(global_invocation_id) gid: vec3u) {
  let c = gid.x;
  if (c >= fp.n) { return; }
  var acc = vec2f(0.0);
  for (var b = 0u; b < fp.blocks; b++) { acc += f_partial[b * fp.n + c]; }
  f_dgamma[c] += acc.x;
  f_dbeta[c] += acc.y;
}
