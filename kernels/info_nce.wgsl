// InfoNCE contrastive loss, forward and backward in six small dispatches:
//   logits    L[i, j] = q_i·p_j / τ                              [B, P]
//   row_stats per row i (and, when symmetric, per column j < B): log-sum-exp, the loss term,
//             the argmax test                                    aux [5, B]
//   finish    loss and accuracy                                  stats [2]
//   grad_logits  L ← dLoss/dL (in place)
//   grad_q    dq = G·p / τ;   grad_p   dp = Gᵀ·q / τ
// Every reduction has a fixed order, so results are bit-identical from run to run.

// @bindings generated from INFO_NCE in info_nce.ts: every entry point has
//   p: Params { batch: u32, passages: u32, hidden: u32, inv_temp: f32, symmetric: u32 }
// and its own arrays (1..n in the order the host passes tensors): logits: lg_q, lg_p → lg_out;
// row_stats: rs_logits → rs_aux; finish: fin_aux → fin_stats; grad_logits: gl_aux → gl_logits;
// grad_q: gq_g, gq_p → gq_dq; grad_p: gp_g, gp_q → gp_dp (inputs read, outputs read_write).

const WG = 256u;
const RED = 64u;  // threads of the reducing workgroups

// aux rows (each [B]): 0 row lse, 1 column lse, 2 row loss term, 3 column loss term, 4 hit (0/1)
const ROW_LSE = 0u;
const COL_LSE = 1u;
const ROW_TERM = 2u;
const COL_TERM = 3u;
const HIT = 4u;

// Weight of the query→passage CE in the loss: ½ when the passage→query CE is averaged in.
fn qp_weight() -> f32 {
  return select(1.0, 0.5, p.symmetric != 0u);
}

// ---------------------------------------------------------------------------- logits

@compute @workgroup_size(256)
fn logits(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let idx = gid.x + gid.y * nwg.x * WG;
  if (idx >= p.batch * p.passages) { return; }
  let i = idx / p.passages;
  let j = idx % p.passages;
  var s = 0.0;
  for (var h = 0u; h < p.hidden; h++) { s += lg_q[i * p.hidden + h] * lg_p[j * p.hidden + h]; }
  lg_out[idx] = s * p.inv_temp;
}

// ---------------------------------------------------------------------------- row_stats

var<workgroup> red_max: array<f32, RED>;
var<workgroup> red_arg: array<u32, RED>;
var<workgroup> red_sum: array<f32, RED>;

// Workgroups [0, B) reduce row i over all P passages; workgroups [B, 2B) (symmetric only) reduce
// column j over the B queries.
@compute @workgroup_size(64)
fn row_stats(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let is_col = wg.x >= p.batch;
  let r = select(wg.x, wg.x - p.batch, is_col);
  let n = select(p.passages, p.batch, is_col);
  // element e of this row/column sits at base + e·stride
  let base = select(r * p.passages, r, is_col);
  let stride = select(1u, p.passages, is_col);
  var mx = -3.0e38;
  var arg = 0xffffffffu;
  for (var e = lid; e < n; e += RED) {
    let x = rs_logits[base + e * stride];
    if (x > mx) { mx = x; arg = e; }
  }
  red_max[lid] = mx;
  red_arg[lid] = arg;
  workgroupBarrier();
  for (var half = RED / 2u; half > 0u; half /= 2u) {
    if (lid < half) {
      let om = red_max[lid + half];
      let oa = red_arg[lid + half];
      if (om > red_max[lid] || (om == red_max[lid] && oa < red_arg[lid])) {
        red_max[lid] = om;
        red_arg[lid] = oa;
      }
    }
    workgroupBarrier();
  }
  let row_max = red_max[0];
  var sum = 0.0;
  for (var e = lid; e < n; e += RED) { sum += exp(rs_logits[base + e * stride] - row_max); }
  red_sum[lid] = sum;
  workgroupBarrier();
  for (var half = RED / 2u; half > 0u; half /= 2u) {
    if (lid < half) { red_sum[lid] += red_sum[lid + half]; }
    workgroupBarrier();
  }
  if (lid == 0u) {
    let lse = row_max + log(red_sum[0]);
    let positive = rs_logits[r * p.passages + r];
    if (is_col) {
      rs_aux[COL_LSE * p.batch + r] = lse;
      rs_aux[COL_TERM * p.batch + r] = lse - positive;
    } else {
      rs_aux[ROW_LSE * p.batch + r] = lse;
      rs_aux[ROW_TERM * p.batch + r] = lse - positive;
      rs_aux[HIT * p.batch + r] = select(0.0, 1.0, red_arg[0] == r);
    }
  }
}

// ---------------------------------------------------------------------------- finish

var<workgroup> fin_red: array<vec3f, RED>;

@compute @workgroup_size(64)
fn finish(@builtin(local_invocation_index) lid: u32) {
  var acc = vec3f(0.0);
  for (var i = lid; i < p.batch; i += RED) {
    let col = select(0.0, fin_aux[COL_TERM * p.batch + i], p.symmetric != 0u);
    acc += vec3f(fin_aux[ROW_TERM * p.batch + i], col, fin_aux[HIT * p.batch + i]);
  }
  fin_red[lid] = acc;
  workgroupBarrier();
  for (var half = RED / 2u; half > 0u; half /= 2u) {
    if (lid < half) { fin_red[lid] += fin_red[lid + half]; }
    workgroupBarrier();
  }
  if (lid == 0u) {
    let t = fin_red[0] / f32(p.batch);
    fin_stats[0] = qp_weight() * t.x + select(0.0, 0.5 * t.y, p.symmetric != 0u);
    fin_stats[1] = t.z;
  }
}

// ---------------------------------------------------------------------------- grad_logits

// G[i, j] = w·(softmax_row_i[j] − [i = j])/B  (+ ½·(softmax_col_j[i] − [i = j])/B, symmetric, j < B)
@compute @workgroup_size(256)
fn grad_logits(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let idx = gid.x + gid.y * nwg.x * WG;
  if (idx >= p.batch * p.passages) { return; }
  let i = idx / p.passages;
  let j = idx % p.passages;
  let x = gl_logits[idx];
  let hit = select(0.0, 1.0, i == j);
  let inv_b = 1.0 / f32(p.batch);
  var g = qp_weight() * (exp(x - gl_aux[ROW_LSE * p.batch + i]) - hit) * inv_b;
  if (p.symmetric != 0u && j < p.batch) {
    g += 0.5 * (exp(x - gl_aux[COL_LSE * p.batch + j]) - hit) * inv_b;
  }
  gl_logits[idx] = g;
}

// ---------------------------------------------------------------------------- grad_q, grad_p

@compute @workgroup_size(256)
fn grad_q(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let idx = gid.x + gid.y * nwg.x * WG;
  if (idx >= p.batch * p.hidden) { return; }
  let i = idx / p.hidden;
  let h = idx % p.hidden;
  var s = 0.0;
  for (var j = 0u; j < p.passages; j++) { s += gq_g[i * p.passages + j] * gq_p[j * p.hidden + h]; }
  gq_dq[idx] = s * p.inv_temp;
}

@compute @workgroup_size(256)
fn grad_p(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let idx = gid.x + gid.y * nwg.x * WG;
  if (idx >= p.passages * p.hidden) { return; }
  let j = idx / p.hidden;
  let h = idx % p.hidden;
  var s = 0.0;
  for (var i = 0u; i < p.batch; i++) { s += gp_g[i * p.passages + j] * gp_q[i * p.hidden + h]; }
  gp_dp[idx] = s * p.inv_temp;
}
