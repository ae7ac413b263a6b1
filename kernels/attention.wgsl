// Fused scaled dot-product attention, FlashAttention-style (online softmax, no [seq×seq] matrix in
// device memory). q, k, v, out, dq, dk, dv: [B, T, H·D] (the layout a linear layer writes);
// mask: [B, T] (> 0.5 = real token); lse: [B, H, T]; stats: [B, H, T, 2] (lse, delta).
// Masked keys are skipped outright (the same as an additive −inf); a row with no real key gets
// out = 0, lse = 0, and no gradient.
//
// Each entry point declares its own bindings (1..n in the order the host passes tensors), so the
// same binding numbers repeat below with different names.

struct Params { batch: u32, seq: u32, heads: u32, scale: f32 }
@group(0) @binding(0) var<uniform> p: Params;

override HEAD_DIM: u32 = 64u;  // a multiple of 4: rows are read and combined as vec4
const MAX_D4 = 16u;             // register arrays are sized for the largest supported head (64)
const BQ = 64u;     // queries (forward, dq) or keys (dk/dv) per workgroup: one per thread
const BK = 16u;     // keys (forward, dq) or queries (dk/dv) per tile in workgroup memory

var<workgroup> tile_a: array<vec4f, 256>;  // BK × MAX_D4: keys, or queries for dk/dv
var<workgroup> tile_b: array<vec4f, 256>;  // BK × MAX_D4: values, or dOut rows for dk/dv
var<workgroup> tile_m: array<f32, 16>;    // key mask, or query lse for dk/dv
var<workgroup> tile_d: array<f32, 16>;    // query delta for dk/dv

// Index of row (b, t, h)'s first vec4 in a [B, T, H·D] tensor seen as array<vec4f>.
fn row_base(b: u32, t: u32, h: u32) -> u32 {
  return ((b * p.seq + t) * p.heads + h) * (HEAD_DIM / 4u);
}

fn hsum(x: vec4f) -> f32 {
  return (x.x + x.y) + (x.z + x.w);
}

fn stat_index(b: u32, h: u32, t: u32) -> u32 {
  return (b * p.heads + h) * p.seq + t;
}

// ---------------------------------------------------------------------------- forward

@group(0) @binding(1) var<storage, read> fq: array<vec4f>;
@group(0) @binding(2) var<storage, read> fk: array<vec4f>;
@group(0) @binding(3) var<storage, read> fv: array<vec4f>;
@group(0) @binding(4) var<storage, read> fmask: array<f32>;
@group(0) @binding(5) var<storage, read_write> fout: array<vec4f>;
@group(0) @binding(6) var<storage, read_write> flse: array<f32>;

// Loads keys [k0, k0+BK) and their values and mask into workgroup memory (zeros past the end).
fn load_kv_forward(b: u32, h: u32, k0: u32, lid: u32) {
  for (var e = lid; e < BK * (HEAD_DIM / 4u); e += BQ) {
    let j = e / (HEAD_DIM / 4u);
    let d = e % (HEAD_DIM / 4u);
    let key = k0 + j;
    if (key < p.seq) {
      tile_a[j * MAX_D4 + d] = fk[row_base(b, key, h) + d];
      tile_b[j * MAX_D4 + d] = fv[row_base(b, key, h) + d];
    } else {
      tile_a[j * MAX_D4 + d] = vec4f(0.0);
      tile_b[j * MAX_D4 + d] = vec4f(0.0);
    }
  }
  if (lid < BK) {
    let key = k0 + lid;
    tile_m[lid] = select(0.0, fmask[b * p.seq + min(key, p.seq - 1u)], key < p.seq);
  }
}

// workgroup (query block, head, batch); one thread per query row.
@compute @workgroup_size(64)
fn forward(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let h = wg.y;
  let b = wg.z;
  let i = wg.x * BQ + lid;
  let live = i < p.seq;
  var q: array<vec4f, MAX_D4>;
  var acc: array<vec4f, MAX_D4>;
  if (live) {
    let base = row_base(b, i, h);
    for (var d = 0u; d < HEAD_DIM / 4u; d++) { q[d] = fq[base + d] * p.scale; }
  }
  var m = -3.0e38;  // running max (finite, so that exp(m - m_new) never sees inf − inf)
  var l = 0.0;      // running sum of exp(s - m)
  for (var k0 = 0u; k0 < p.seq; k0 += BK) {
    load_kv_forward(b, h, k0, lid);
    workgroupBarrier();
    var s: array<f32, BK>;
    var tile_max = -3.0e38;
    var any_key = false;
    for (var j = 0u; j < BK; j++) {
      if (tile_m[j] > 0.5) {
        var acc4 = vec4f(0.0);
        for (var d = 0u; d < HEAD_DIM / 4u; d++) { acc4 += q[d] * tile_a[j * MAX_D4 + d]; }
        let dot = hsum(acc4);
        s[j] = dot;
        tile_max = max(tile_max, dot);
        any_key = true;
      }
    }
    if (any_key) {
      let m_new = max(m, tile_max);
      let corr = exp(m - m_new);
      l *= corr;
      for (var d = 0u; d < HEAD_DIM / 4u; d++) { acc[d] *= corr; }
      for (var j = 0u; j < BK; j++) {
        if (tile_m[j] > 0.5) {
          let pj = exp(s[j] - m_new);
          l += pj;
          for (var d = 0u; d < HEAD_DIM / 4u; d++) { acc[d] += pj * tile_b[j * MAX_D4 + d]; }
        }
      }
      m = m_new;
    }
    workgroupBarrier();
  }
  if (live) {
    let base = row_base(b, i, h);
    let inv = select(0.0, 1.0 / l, l > 0.0);
    for (var d = 0u; d < HEAD_DIM / 4u; d++) { fout[base + d] = acc[d] * inv; }
    flse[stat_index(b, h, i)] = select(0.0, m + log(l), l > 0.0);
  }
}

// ---------------------------------------------------------------------------- backward: delta

@group(0) @binding(1) var<storage, read> dl_do: array<vec4f>;
@group(0) @binding(2) var<storage, read> dl_out: array<vec4f>;
@group(0) @binding(3) var<storage, read> dl_lse: array<f32>;
@group(0) @binding(4) var<storage, read_write> dl_stats: array<f32>;

// stats[2·r] = lse_r, stats[2·r + 1] = D_r = dOut_r·out_r for every row r = (b, h, t): packing
// both keeps the two backward kernels within 8 storage bindings.
@compute @workgroup_size(64)
fn backward_delta(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let h = wg.y;
  let b = wg.z;
  let i = wg.x * BQ + lid;
  if (i < p.seq) {
    let base = row_base(b, i, h);
    var acc4 = vec4f(0.0);
    for (var d = 0u; d < HEAD_DIM / 4u; d++) { acc4 += dl_do[base + d] * dl_out[base + d]; }
    let delta = hsum(acc4);
    let r = stat_index(b, h, i);
    dl_stats[2u * r] = dl_lse[r];
    dl_stats[2u * r + 1u] = delta;
  }
}

// ---------------------------------------------------------------------------- backward: dq

@group(0) @binding(1) var<storage, read> qd_do: array<vec4f>;
@group(0) @binding(2) var<storage, read> qd_q: array<vec4f>;
@group(0) @binding(3) var<storage, read> qd_k: array<vec4f>;
@group(0) @binding(4) var<storage, read> qd_v: array<vec4f>;
@group(0) @binding(5) var<storage, read> qd_stats: array<f32>;
@group(0) @binding(6) var<storage, read> qd_mask: array<f32>;
@group(0) @binding(7) var<storage, read_write> qd_dq: array<vec4f>;

fn load_kv_dq(b: u32, h: u32, k0: u32, lid: u32) {
  for (var e = lid; e < BK * (HEAD_DIM / 4u); e += BQ) {
    let j = e / (HEAD_DIM / 4u);
    let d = e % (HEAD_DIM / 4u);
    let key = k0 + j;
    if (key < p.seq) {
      tile_a[j * MAX_D4 + d] = qd_k[row_base(b, key, h) + d];
      tile_b[j * MAX_D4 + d] = qd_v[row_base(b, key, h) + d];
    } else {
      tile_a[j * MAX_D4 + d] = vec4f(0.0);
      tile_b[j * MAX_D4 + d] = vec4f(0.0);
    }
  }
  if (lid < BK) {
    let key = k0 + lid;
    tile_m[lid] = select(0.0, qd_mask[b * p.seq + min(key, p.seq - 1u)], key < p.seq);
  }
}

// dq_i = scale · Σ_j P_ij (dP_ij − D_i) k_j with P_ij = exp(scale·q_i·k_j − lse_i) and
// dP_ij = dOut_i·v_j. One thread per query row, keys streamed in tiles.
@compute @workgroup_size(64)
fn backward_dq(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let h = wg.y;
  let b = wg.z;
  let i = wg.x * BQ + lid;
  let live = i < p.seq;
  var q: array<vec4f, MAX_D4>;
  var g: array<vec4f, MAX_D4>;
  var dq: array<vec4f, MAX_D4>;
  var lse = 0.0;
  var delta = 0.0;
  if (live) {
    let base = row_base(b, i, h);
    for (var d = 0u; d < HEAD_DIM / 4u; d++) {
      q[d] = qd_q[base + d] * p.scale;
      g[d] = qd_do[base + d];
    }
    let r = stat_index(b, h, i);
    lse = qd_stats[2u * r];
    delta = qd_stats[2u * r + 1u];
  }
  for (var k0 = 0u; k0 < p.seq; k0 += BK) {
    load_kv_dq(b, h, k0, lid);
    workgroupBarrier();
    for (var j = 0u; j < BK; j++) {
      if (tile_m[j] > 0.5) {
        var s4 = vec4f(0.0);
        var dp4 = vec4f(0.0);
        for (var d = 0u; d < HEAD_DIM / 4u; d++) {
          s4 += q[d] * tile_a[j * MAX_D4 + d];
          dp4 += g[d] * tile_b[j * MAX_D4 + d];
        }
        let s = hsum(s4);
        let dp = hsum(dp4);
        let ds = exp(s - lse) * (dp - delta);
        for (var d = 0u; d < HEAD_DIM / 4u; d++) { dq[d] += ds * tile_a[j * MAX_D4 + d]; }
      }
    }
    workgroupBarrier();
  }
  if (live) {
    let base = row_base(b, i, h);
    for (var d = 0u; d < HEAD_DIM / 4u; d++) { qd_dq[base + d] = dq[d] * p.scale; }
  }
}

// ---------------------------------------------------------------------------- backward: dk, dv

@group(0) @binding(1) var<storage, read> kv_do: array<vec4f>;
@group(0) @binding(2) var<storage, read> kv_q: array<vec4f>;
@group(0) @binding(3) var<storage, read> kv_k: array<vec4f>;
@group(0) @binding(4) var<storage, read> kv_v: array<vec4f>;
@group(0) @binding(5) var<storage, read> kv_stats: array<f32>;
@group(0) @binding(6) var<storage, read> kv_mask: array<f32>;
@group(0) @binding(7) var<storage, read_write> kv_dk: array<vec4f>;
@group(0) @binding(8) var<storage, read_write> kv_dv: array<vec4f>;

// Loads queries [q0, q0+BK), their dOut rows, lse and delta (zeros past the end).
fn load_q_dkdv(b: u32, h: u32, q0: u32, lid: u32) {
  for (var e = lid; e < BK * (HEAD_DIM / 4u); e += BQ) {
    let r = e / (HEAD_DIM / 4u);
    let d = e % (HEAD_DIM / 4u);
    let row = q0 + r;
    if (row < p.seq) {
      tile_a[r * MAX_D4 + d] = kv_q[row_base(b, row, h) + d];
      tile_b[r * MAX_D4 + d] = kv_do[row_base(b, row, h) + d];
    } else {
      tile_a[r * MAX_D4 + d] = vec4f(0.0);
      tile_b[r * MAX_D4 + d] = vec4f(0.0);
    }
  }
  if (lid < BK) {
    let row = q0 + lid;
    let r = stat_index(b, h, min(row, p.seq - 1u));
    // Rows past the end get lse = +huge so that their P is exactly 0.
    tile_m[lid] = select(3.0e38, kv_stats[2u * r], row < p.seq);
    tile_d[lid] = select(0.0, kv_stats[2u * r + 1u], row < p.seq);
  }
}

// dv_j = Σ_i P_ij dOut_i;  dk_j = scale · Σ_i P_ij (dP_ij − D_i) q_i. One thread per key; a fixed
// loop order over queries keeps it deterministic without atomics. Masked keys get zeros.
@compute @workgroup_size(64)
fn backward_dkdv(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let h = wg.y;
  let b = wg.z;
  let j = wg.x * BQ + lid;
  let live = j < p.seq;
  let real = live && kv_mask[b * p.seq + min(j, p.seq - 1u)] > 0.5;
  var k: array<vec4f, MAX_D4>;
  var v: array<vec4f, MAX_D4>;
  var dk: array<vec4f, MAX_D4>;
  var dv: array<vec4f, MAX_D4>;
  if (real) {
    let base = row_base(b, j, h);
    for (var d = 0u; d < HEAD_DIM / 4u; d++) {
      k[d] = kv_k[base + d] * p.scale;
      v[d] = kv_v[base + d];
    }
  }
  for (var q0 = 0u; q0 < p.seq; q0 += BK) {
    load_q_dkdv(b, h, q0, lid);
    workgroupBarrier();
    if (real) {
      for (var r = 0u; r < BK; r++) {
        var s4 = vec4f(0.0);
        var dp4 = vec4f(0.0);
        for (var d = 0u; d < HEAD_DIM / 4u; d++) {
          s4 += tile_a[r * MAX_D4 + d] * k[d];
          dp4 += tile_b[r * MAX_D4 + d] * v[d];
        }
        let s = hsum(s4);
        let dp = hsum(dp4);
        let pr = exp(s - tile_m[r]);
        let ds = pr * (dp - tile_d[r]);
        for (var d = 0u; d < HEAD_DIM / 4u; d++) {
          dv[d] += pr * tile_b[r * MAX_D4 + d];
          dk[d] += ds * tile_a[r * MAX_D4 + d];
        }
      }
    }
    workgroupBarrier();
  }
  if (live) {
    let base = row_base(b, j, h);
    for (var d = 0u; d < HEAD_DIM / 4u; d++) {
      kv_dk[base + d] = dk[d] * p.scale;
      kv_dv[base + d] = dv[d];
    }
  }
}
