// Deterministic full reductions (sum, sum of squares). The summation order is fixed by the
// constants below, never by the workgroup size: level passes add CHUNK values per invocation in
// sequence, with element i of block b going to lane i % LANES (coalesced reads), until at most
// TREE partials remain; then one workgroup adds those by a fixed pairwise tree over TREE slots.
const CHUNK: u32 = 64u;
const LANES: u32 = 256u;
const TREE: u32 = 1024u;

override WG: u32 = 256u;

// @bindings generated from REDUCE in reduce.ts:
//   level: lp: Params_lp { n: u32, n_out: u32, square: u32 }; x (read) → out (read_write)
//   tree: tp: Params_tp { n: u32, square: u32, divisor: f32 }; x (read) → out (read_write)

fn term(v: f32, square: u32) -> f32 {
  if (square != 0u) { return v * v; }
  return v;
}

// out[g] = Σ_{k < CHUNK} term(x[b·CHUNK·LANES + k·LANES + l]) with g = b·LANES + l.
@compute @workgroup_size(WG)
fn level(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let g = gid.x + gid.y * nwg.x * WG;
  if (g >= lp.n_out) { return; }
  let start = (g / LANES) * CHUNK * LANES + g % LANES;
  var acc = 0.0;
  for (var k = 0u; k < CHUNK; k++) {
    let i = start + k * LANES;
    if (i < lp.n) { acc += term(x[i], lp.square); }
  }
  out[g] = acc;
}

var<workgroup> buf: array<f32, TREE>;

// out[0] = (Σ term(x[i]), i < n ≤ TREE) / divisor; slot pairs are fixed, invocations only share
// the work.
@compute @workgroup_size(WG)
fn tree(@builtin(local_invocation_index) lid: u32) {
  for (var i = lid; i < TREE; i += WG) {
    var v = 0.0;
    if (i < tp.n) { v = term(x[i], tp.square); }
    buf[i] = v;
  }
  workgroupBarrier();
  for (var s = TREE / 2u; s > 0u; s = s / 2u) {
    for (var i = lid; i < s; i += WG) { buf[i] += buf[i + s]; }
    workgroupBarrier();
  }
  if (lid == 0u) { out[0] = buf[0] / tp.divisor; }
}
