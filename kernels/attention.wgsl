// Fused scaled dot-product attention, FlashAttention-style (online softmax, no [seq×seq] matrix in
// device memory). q, k, v, out, dq, dk, dv: [B, T, H·D] (the layout a linear layer writes);
// mask: [B, T] (> 0.5 = real token); lse: [B, H, T]; stats: [B, H, T] of (lse, delta).
// Masked keys are skipped outright (the same as an additive −inf); a row with no real key gets
// out = 0, lse = 0, and no gradient.
//
// Work split: every invocation owns ROWS consecutive rows (queries for forward and dq, keys for
// dk/dv) of one (batch, head) and walks the other side's rows straight from device memory, in a
// fixed order (deterministic, no atomics, no workgroup memory, no barriers). Each key/value (or
// query/dOut) vec4 loaded serves ROWS rows: on lavapipe, where every load costs about the same
// per invocation and FMAs are nearly free, loads per FMA is what sets the speed. Invocations are
// numbered (batch, head, row group) with the row group fastest, so a workgroup can span several
// (batch, head) pairs when seq is short and no lane idles.
//
// Template variables: `d4` = headDim / 4 (rows move as vec4) and `rows` = ROWS; the per-row
// registers are unrolled by name so that they stay in registers. `drop` = 1 compiles
// attention-probability dropout: the probability P_ij of key j in query row i of (b, h) is kept
// and scaled by drop_scale = 1/(1 − p) when the hash of (drop_key, index of (drop_b0 + b, h, i,
// j) in [B, heads, seq, seq]) is at least drop_threshold (the mask of dropout.wgsl), else zeroed;
// the softmax normaliser and lse keep every key. The backward uses the same mask: dV_j = Σ_i
// P_ij Z_ij dOut_i, dS_ij = P_ij (Z_ij dOut_i·v_j − D_i) with D_i = dOut_i·out_i as before.
// Without `drop` the code is exactly the undropped kernel.
//
// `packed` = 1 reads q, k and v from one packed tensor qkv = [B·T, 3·H·D] (what a fused QKV
// product writes: row r holds q_r, k_r, v_r side by side), bound to the q, k and v bindings alike
// (read-only bindings may alias): row stride 3·heads·D4 vec4, q, k, v at column offsets 0,
// heads·D4 and 2·heads·D4 (qkv_base). dq then goes into the q block of a packed dqkv tensor of
// the same shape (the dq binding), and dk, dv into its k and v blocks through the one read_write
// binding kv_dqkv (two writable bindings may not alias one buffer). out, dOut and the stats keep
// their layouts. Only the indices change: every sum runs in the same order (bit-identical results).

// @bindings generated from ATTENTION in attention.ts: every entry point has
//   p: Params { batch: u32, seq: u32, heads: u32, scale: f32, groups: u32, drop_key: u32,
//     drop_threshold: u32, drop_scale: f32, drop_b0: u32 }
// and its own arrays (binding numbers repeat between entry points; outputs read_write):
//   forward: fq, fk, fv (vec4f), fmask (f32) → fout (vec4f), flse (f32)
//   backward_delta: dl_do, dl_out (vec4f), dl_lse (f32) → dl_stats (vec2f)
//   backward_dq: qd_do, qd_q, qd_k, qd_v (vec4f), qd_stats (vec2f), qd_mask (f32) → qd_dq
//   backward_dkdv: kv_do, kv_q, kv_k, kv_v (vec4f), kv_stats (vec2f), kv_mask (f32) → kv_dk, kv_dv
//     (unpacked), or → kv_dqkv (packed: dk and dv blocks of dqkv)

{#
  Base indices of the q, k and v rows read (and of dq, dk, dv written): unpacked, those of the
  [B, T, H·D] layout (qb, kb); packed, the blocks of qkv (pq, pk, pv).
#}{% set Q = "pq" if packed else "qb" -%}
{% set K = "pk" if packed else "kb" -%}
{% set V = "pv" if packed else "kb" -%}
{% set DK = "kv_dqkv" if packed else "kv_dk" -%}
{% set DV = "kv_dqkv" if packed else "kv_dv" -%}
override WG: u32 = 64u;
const D4 = {{ d4 }}u;
const ROWS = {{ rows }}u;

// Index of row (b, t, h)'s first vec4 in a [B, T, H·D] tensor seen as array<vec4f>.
fn row_base(b: u32, t: u32, h: u32) -> u32 {
  return ((b * p.seq + t) * p.heads + h) * D4;
}

{% if packed %}// Index of row (b, t, h)'s first vec4 of block `blk` (0: q, 1: k, 2: v) in the packed
// [B·T, 3·H·D] qkv (or dqkv) tensor seen as array<vec4f>.
fn qkv_base(b: u32, t: u32, h: u32, blk: u32) -> u32 {
  return (((b * p.seq + t) * 3u + blk) * p.heads + h) * D4;
}

{% endif %}fn hsum(x: vec4f) -> f32 {
  return (x.x + x.y) + (x.z + x.w);
}

fn stat_index(b: u32, h: u32, t: u32) -> u32 {
  return (b * p.heads + h) * p.seq + t;
}

{% if drop %}// lowbias32, as in dropout.wgsl.
fn drop_mix32(v: u32) -> u32 {
  var x = v;
  x ^= x >> 16u;
  x *= 0x7feb352du;
  x ^= x >> 15u;
  x *= 0x846ca68bu;
  x ^= x >> 16u;
  return x;
}

// Z_ij / (1 − p) for query row i and key j of (b, h).
fn drop_factor(b: u32, h: u32, i: u32, j: u32) -> f32 {
  let idx = (((p.drop_b0 + b) * p.heads + h) * p.seq + i) * p.seq + j;
  let hv = drop_mix32(drop_mix32(idx ^ p.drop_key) + p.drop_key);
  return select(0.0, p.drop_scale, hv >= p.drop_threshold);
}

{% endif %}// (batch, head, first row) of an invocation, or batch = p.batch when it has no work.
fn task(wid: vec3u, nwg: vec3u, lid: u32) -> vec3u {
  let id = (wid.x + wid.y * nwg.x) * WG + lid;
  let g = id % p.groups;
  let bh = id / p.groups;
  return vec3u(bh / p.heads, bh % p.heads, g * ROWS);
}

// ---------------------------------------------------------------------------- forward

// out_i = Σ_j softmax_j(scale·q_i·k_j) v_j over real keys j, with a running max and sum per row.
@compute @workgroup_size(WG)
fn forward(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_index) lid: u32,
) {
  let t = task(wid, nwg, lid);
  let b = t.x;
  let h = t.y;
  if (b >= p.batch) { return; }
  // Rows past the end repeat the last row (same work, no write): no divergent loads.
{% for r in range(rows) %}  let i{{ r }} = min(t.z + {{ r }}u, p.seq - 1u);
  let qb{{ r }} = row_base(b, i{{ r }}, h);
{% if packed %}  let pq{{ r }} = qkv_base(b, i{{ r }}, h, 0u);
{% endif %}{% for d in range(d4) %}  let q{{ r }}_{{ d }} = fq[{{ Q }}{{ r }} + {{ d }}u] * p.scale;
  var a{{ r }}_{{ d }} = vec4f(0.0);
{% endfor %}  var m{{ r }} = -3.0e38;  // running max (finite: exp(m − m_new) never sees inf − inf)
  var l{{ r }} = 0.0;       // running Σ exp(s − m)
{% endfor %}
  let mrow = b * p.seq;
  for (var j = 0u; j < p.seq; j++) {
    if (fmask[mrow + j] > 0.5) {
{% if packed %}      let pk = qkv_base(b, j, h, 1u);
      let pv = qkv_base(b, j, h, 2u);
{% else %}      let kb = row_base(b, j, h);
{% endif %}{% for d in range(d4) %}      let k{{ d }} = fk[{{ K }} + {{ d }}u];
{% endfor %}{% for r in range(rows) %}      let s{{ r }} = hsum({% for d in range(d4) %}{% if d > 0 %} + {% endif %}q{{ r }}_{{ d }} * k{{ d }}{% endfor %});
{% endfor %}{% for d in range(d4) %}      let v{{ d }} = fv[{{ V }} + {{ d }}u];
{% endfor %}{% for r in range(rows) %}      {
        let mn = max(m{{ r }}, s{{ r }});
        let c = exp(m{{ r }} - mn);
        let pj = exp(s{{ r }} - mn);
        l{{ r }} = l{{ r }} * c + pj;
        m{{ r }} = mn;
{% if drop %}        let pz = pj * drop_factor(b, h, i{{ r }}, j);
{% for d in range(d4) %}        a{{ r }}_{{ d }} = a{{ r }}_{{ d }} * c + pz * v{{ d }};
{% endfor %}{% else %}{% for d in range(d4) %}        a{{ r }}_{{ d }} = a{{ r }}_{{ d }} * c + pj * v{{ d }};
{% endfor %}{% endif %}      }
{% endfor %}    }
  }
{% for r in range(rows) %}  if (t.z + {{ r }}u < p.seq) {
    let inv = select(0.0, 1.0 / l{{ r }}, l{{ r }} > 0.0);
{% for d in range(d4) %}    fout[qb{{ r }} + {{ d }}u] = a{{ r }}_{{ d }} * inv;
{% endfor %}    flse[stat_index(b, h, i{{ r }})] = select(0.0, m{{ r }} + log(l{{ r }}), l{{ r }} > 0.0);
  }
{% endfor %}}

// ---------------------------------------------------------------------------- backward: delta

// stats[r] = (lse_r, D_r = dOut_r·out_r) for every row r = (b, h, t): packing both keeps the two
// backward kernels within 8 storage bindings. One invocation per row (p.groups = seq here).
@compute @workgroup_size(WG)
fn backward_delta(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_index) lid: u32,
) {
  let id = (wid.x + wid.y * nwg.x) * WG + lid;
  let i = id % p.seq;
  let bh = id / p.seq;
  let b = bh / p.heads;
  let h = bh % p.heads;
  if (b >= p.batch) { return; }
  let base = row_base(b, i, h);
  var acc4 = vec4f(0.0);
  for (var d = 0u; d < D4; d++) { acc4 += dl_do[base + d] * dl_out[base + d]; }
  let r = stat_index(b, h, i);
  dl_stats[r] = vec2f(dl_lse[r], hsum(acc4));
}

// ---------------------------------------------------------------------------- backward: dq

// dq_i = scale · Σ_j P_ij (dP_ij − D_i) k_j with P_ij = exp(scale·q_i·k_j − lse_i) and
// dP_ij = dOut_i·v_j, over real keys j in order.
@compute @workgroup_size(WG)
fn backward_dq(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_index) lid: u32,
) {
  let t = task(wid, nwg, lid);
  let b = t.x;
  let h = t.y;
  if (b >= p.batch) { return; }
{% for r in range(rows) %}  let i{{ r }} = min(t.z + {{ r }}u, p.seq - 1u);
  let qb{{ r }} = row_base(b, i{{ r }}, h);
{% if packed %}  let pq{{ r }} = qkv_base(b, i{{ r }}, h, 0u);
{% endif %}  let st{{ r }} = qd_stats[stat_index(b, h, i{{ r }})];
{% for d in range(d4) %}  let q{{ r }}_{{ d }} = qd_q[{{ Q }}{{ r }} + {{ d }}u] * p.scale;
  let g{{ r }}_{{ d }} = qd_do[qb{{ r }} + {{ d }}u];
  var a{{ r }}_{{ d }} = vec4f(0.0);
{% endfor %}{% endfor %}
  let mrow = b * p.seq;
  for (var j = 0u; j < p.seq; j++) {
    if (qd_mask[mrow + j] > 0.5) {
{% if packed %}      let pk = qkv_base(b, j, h, 1u);
      let pv = qkv_base(b, j, h, 2u);
{% else %}      let kb = row_base(b, j, h);
{% endif %}{% for d in range(d4) %}      let k{{ d }} = qd_k[{{ K }} + {{ d }}u];
      let v{{ d }} = qd_v[{{ V }} + {{ d }}u];
{% endfor %}{% for r in range(rows) %}      {
        let s = hsum({% for d in range(d4) %}{% if d > 0 %} + {% endif %}q{{ r }}_{{ d }} * k{{ d }}{% endfor %});
        let dp = hsum({% for d in range(d4) %}{% if d > 0 %} + {% endif %}g{{ r }}_{{ d }} * v{{ d }}{% endfor %});
{% if drop %}        let ds = exp(s - st{{ r }}.x) * (dp * drop_factor(b, h, i{{ r }}, j) - st{{ r }}.y);
{% else %}        let ds = exp(s - st{{ r }}.x) * (dp - st{{ r }}.y);
{% endif %}{% for d in range(d4) %}        a{{ r }}_{{ d }} += ds * k{{ d }};
{% endfor %}      }
{% endfor %}    }
  }
{% for r in range(rows) %}  if (t.z + {{ r }}u < p.seq) {
{% for d in range(d4) %}    qd_dq[{{ Q }}{{ r }} + {{ d }}u] = a{{ r }}_{{ d }} * p.scale;
{% endfor %}  }
{% endfor %}}

// ---------------------------------------------------------------------------- backward: dk, dv

// dv_j = Σ_i P_ij dOut_i;  dk_j = scale · Σ_i P_ij (dP_ij − D_i) q_i, over every query row i in
// order (padded query rows too: their outputs are part of the loss). Masked keys get zeros.
@compute @workgroup_size(WG)
fn backward_dkdv(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_index) lid: u32,
) {
  let t = task(wid, nwg, lid);
  let b = t.x;
  let h = t.y;
  if (b >= p.batch) { return; }
  let mrow = b * p.seq;
{% for r in range(rows) %}  let j{{ r }} = min(t.z + {{ r }}u, p.seq - 1u);
{% if packed %}  let pk{{ r }} = qkv_base(b, j{{ r }}, h, 1u);
  let pv{{ r }} = qkv_base(b, j{{ r }}, h, 2u);
{% else %}  let kb{{ r }} = row_base(b, j{{ r }}, h);
{% endif %}  let real{{ r }} = kv_mask[mrow + j{{ r }}] > 0.5;
{% for d in range(d4) %}  let k{{ r }}_{{ d }} = kv_k[{{ K }}{{ r }} + {{ d }}u] * p.scale;
  let v{{ r }}_{{ d }} = kv_v[{{ V }}{{ r }} + {{ d }}u];
  var dk{{ r }}_{{ d }} = vec4f(0.0);
  var dv{{ r }}_{{ d }} = vec4f(0.0);
{% endfor %}{% endfor %}
  for (var i = 0u; i < p.seq; i++) {
    let st = kv_stats[stat_index(b, h, i)];
    let qb = row_base(b, i, h);
{% if packed %}    let pq = qkv_base(b, i, h, 0u);
{% endif %}{% for d in range(d4) %}    let q{{ d }} = kv_q[{{ Q }} + {{ d }}u];
    let g{{ d }} = kv_do[qb + {{ d }}u];
{% endfor %}{% for r in range(rows) %}    {
      let s = hsum({% for d in range(d4) %}{% if d > 0 %} + {% endif %}q{{ d }} * k{{ r }}_{{ d }}{% endfor %});
      let dp = hsum({% for d in range(d4) %}{% if d > 0 %} + {% endif %}g{{ d }} * v{{ r }}_{{ d }}{% endfor %});
      let pr = exp(s - st.x);
{% if drop %}      let z = drop_factor(b, h, i, j{{ r }});
      let ds = pr * (dp * z - st.y);
      let pz = pr * z;
{% for d in range(d4) %}      dv{{ r }}_{{ d }} += pz * g{{ d }};
      dk{{ r }}_{{ d }} += ds * q{{ d }};
{% endfor %}{% else %}      let ds = pr * (dp - st.y);
{% for d in range(d4) %}      dv{{ r }}_{{ d }} += pr * g{{ d }};
      dk{{ r }}_{{ d }} += ds * q{{ d }};
{% endfor %}{% endif %}    }
{% endfor %}  }
{% for r in range(rows) %}  if (t.z + {{ r }}u < p.seq) {
    // A masked key's sums are garbage (its scores were never normalised): write zeros.
{% for d in range(d4) %}    {{ DK }}[{{ K }}{{ r }} + {{ d }}u] = select(vec4f(0.0), dk{{ r }}_{{ d }} * p.scale, real{{ r }});
    {{ DV }}[{{ V }}{{ r }} + {{ d }}u] = select(vec4f(0.0), dv{{ r }}_{{ d }}, real{{ r }});
{% endfor %}  }
{% endfor %}}
