// Retrieval ranks without sorting: for each (query, relevant candidate) pair, count the candidates
// that score strictly higher, plus equal-scoring candidates with a lower global index.
//   score:  scores[q, j] = dot(queries[q], block[j])            (one block of candidates)
//   count:  mode 0 gathers each pair's own score from the block holding its candidate;
//           mode 1 adds this block's "ahead of the pair" counts to counts[2p] (whole pool) and
//           counts[2p + 1] (candidates in the pair's range [lo, hi), e.g. its language).
// Scores come from one pipeline only, so a pair's own score and the scores it is compared with are
// bit-identical wherever the candidate sits; ties are therefore exact and block size cannot
// change a rank. The two entry points reuse binding numbers with different types; each entry
// point's interface has unique bindings, which is what WGSL requires.
struct Params {
  nq: u32,          // queries in this chunk
  nb: u32,          // candidates in this block
  h: u32,           // embedding width
  block_start: u32, // global index of the block's first candidate
  n_pairs: u32,
  mode: u32,        // count: 0 = gather own scores, 1 = count
}
@group(0) @binding(0) var<uniform> p: Params;

// ---- score
@group(0) @binding(1) var<storage, read> queries: array<f32>;
@group(0) @binding(2) var<storage, read> block: array<f32>;
@group(0) @binding(3) var<storage, read_write> out_scores: array<f32>;

const TILE = 16u;
var<workgroup> tq: array<array<f32, 16>, 16>;
var<workgroup> tc: array<array<f32, 16>, 16>;

@compute @workgroup_size(16, 16)
fn score(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u) {
  let row = wid.y * TILE + lid.y; // query
  let col = wid.x * TILE + lid.x; // candidate
  let crow = wid.x * TILE + lid.y; // candidate row this thread loads
  var acc = 0.0;
  for (var k0 = 0u; k0 < p.h; k0 += TILE) {
    let k = k0 + lid.x;
    var a = 0.0;
    if (row < p.nq && k < p.h) { a = queries[row * p.h + k]; }
    var b = 0.0;
    if (crow < p.nb && k < p.h) { b = block[crow * p.h + k]; }
    tq[lid.y][lid.x] = a;
    tc[lid.y][lid.x] = b;
    workgroupBarrier();
    for (var i = 0u; i < TILE; i++) { acc += tq[lid.y][i] * tc[lid.x][i]; }
    workgroupBarrier();
  }
  if (row < p.nq && col < p.nb) { out_scores[row * p.nb + col] = acc; }
}

// ---- count
@group(0) @binding(1) var<storage, read> scores: array<f32>;
// Per pair: query (within the chunk), candidate (global), range start, range end (global).
@group(0) @binding(2) var<storage, read> pairs: array<u32>;
@group(0) @binding(3) var<storage, read_write> own: array<f32>;
@group(0) @binding(4) var<storage, read_write> counts: array<u32>;

const WG = 64u;
var<workgroup> part_all: array<u32, 64>;
var<workgroup> part_rng: array<u32, 64>;

@compute @workgroup_size(64)
fn count(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u,
         @builtin(num_workgroups) nwg: vec3u) {
  let pi = wid.x + wid.y * nwg.x; // one workgroup per pair: uniform within the workgroup
  if (pi >= p.n_pairs) { return; }
  let q = pairs[4u * pi];
  let c = pairs[4u * pi + 1u];
  let lo = pairs[4u * pi + 2u];
  let hi = pairs[4u * pi + 3u];
  let row = q * p.nb;
  if (p.mode == 0u) {
    if (lid == 0u && c >= p.block_start && c - p.block_start < p.nb) {
      own[pi] = scores[row + c - p.block_start];
    }
    return;
  }
  let s = own[pi];
  var n_all = 0u;
  var n_rng = 0u;
  for (var j = lid; j < p.nb; j += WG) {
    let v = scores[row + j];
    let g = p.block_start + j;
    if (v > s || (v == s && g < c)) {
      n_all += 1u;
      if (g >= lo && g < hi) { n_rng += 1u; }
    }
  }
  part_all[lid] = n_all;
  part_rng[lid] = n_rng;
  workgroupBarrier();
  for (var w = WG / 2u; w > 0u; w >>= 1u) {
    if (lid < w) {
      part_all[lid] += part_all[lid + w];
      part_rng[lid] += part_rng[lid + w];
    }
    workgroupBarrier();
  }
  if (lid == 0u) {
    counts[2u * pi] += part_all[0];
    counts[2u * pi + 1u] += part_rng[0];
  }
}
