// Retrieval ranks without sorting: for each (query, relevant candidate) pair, count the candidates
// that score strictly higher, plus equal-scoring candidates with a lower global index.
//   score:  scores[q, j] = dot(queries[q], block[j])   (one block of candidates; row stride ld)
//   gather: each pair's own score, from the block holding its candidate (one thread per pair)
//   count:  one workgroup per group of ≤ K pairs of the same query makes ONE pass over that
//           query's score row, comparing each score with all K pairs' thresholds; it adds the
//           candidates ahead of each pair to counts[2p] (whole pool) and counts[2p + 1] (those in
//           the pair's range [lo, hi), e.g. its language).
// Scores come from one pipeline only, and every score is the same sequential sum
// acc = acc + q[k]·c[k], k = 0, 1, …, so a pair's own score and the scores it is compared with are
// bit-identical wherever the candidate sits; ties are therefore exact and block size cannot change
// a rank. The entry points reuse binding numbers with different types; each entry point's
// interface has unique bindings, which is what WGSL requires.
//
// Template variables: vec_q (queries and block are read as vec4: h % 4 == 0), vec_s (score rows
// are read as vec4: ld % 4 == 0), K (pair slots per count workgroup), WG (count workgroup size),
// TM×TN (scores per score thread).
// Lavapipe pays ~20 ns per lane for every storage or workgroup load whatever its width, and
// spills dynamically indexed arrays, so the register blocks are unrolled here.
// @bindings generated from RANK in retrieval_rank.ts: every entry point has
//   p: Params { nq: u32 (queries in this chunk), nb: u32 (candidates in this block),
//     h: u32 (embedding width), ld: u32 (row stride of the score matrix, ≥ nb),
//     block_start: u32 (global index of the block's first candidate),
//     q0: u32 (global index of the chunk's first query), first: u32 (gather: first pair; count:
//     first group), n: u32 (gather: pairs; count: groups) }
//   score: queries, block (read; vec4f with vec_q, else f32) → out_scores (read_write)
//   gather: scores (read; vec4f with vec_s, else f32), pairs (read, u32) → own (read_write)
//   count: scores, pairs (read), own (read_write, read here), groups (read, u32; with the
//     `grouped` template flag only, else every pair is its own group) → counts (read_write, u32)

// ---- score: 8×8 workgroup, each thread a TM×TN block of scores, operands read straight from
// storage (no workgroup staging: on lavapipe a staged load costs as much as a storage load).

// Four consecutive k of row `row` (zero past h, which leaves a sum unchanged).
fn load_q(row: u32, k: u32) -> vec4f {
{% if vec_q %}  return queries[(row * p.h + k) / 4u];
{% else %}  var v = vec4f(0.0);
  for (var e = 0u; e < 4u; e++) { if (k + e < p.h) { v[e] = queries[row * p.h + k + e]; } }
  return v;
{% endif %}}

fn load_c(row: u32, k: u32) -> vec4f {
{% if vec_q %}  return block[(row * p.h + k) / 4u];
{% else %}  var v = vec4f(0.0);
  for (var e = 0u; e < 4u; e++) { if (k + e < p.h) { v[e] = block[row * p.h + k + e]; } }
  return v;
{% endif %}}

@compute @workgroup_size(8, 8)
fn score(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u) {
  let r0 = wid.y * {{ 8 * TM }}u + lid.y * {{ TM }}u; // first query of this thread
  let c0 = wid.x * {{ 8 * TN }}u + lid.x * {{ TN }}u; // first candidate
  // Rows past the end read the last row (results discarded), so the loop has no branches.
{% for i in range(TM) %}  let qr{{ i }} = min(r0 + {{ i }}u, p.nq - 1u);
{% endfor %}{% for j in range(TN) %}  let cr{{ j }} = min(c0 + {{ j }}u, p.nb - 1u);
{% endfor %}{% for i in range(TM) %}{% for j in range(TN) %}  var acc_{{ i }}_{{ j }} = 0.0;
{% endfor %}{% endfor %}
  for (var k = 0u; k < p.h; k += 4u) {
{% for i in range(TM) %}    let a{{ i }} = load_q(qr{{ i }}, k);
{% endfor %}{% for j in range(TN) %}    let b{{ j }} = load_c(cr{{ j }}, k);
{% endfor %}{% for i in range(TM) %}{% for j in range(TN) %}    acc_{{ i }}_{{ j }} += a{{ i }}.x * b{{ j }}.x;
    acc_{{ i }}_{{ j }} += a{{ i }}.y * b{{ j }}.y;
    acc_{{ i }}_{{ j }} += a{{ i }}.z * b{{ j }}.z;
    acc_{{ i }}_{{ j }} += a{{ i }}.w * b{{ j }}.w;
{% endfor %}{% endfor %}  }
{% for i in range(TM) %}  if (r0 + {{ i }}u < p.nq) {
{% for j in range(TN) %}    if (c0 + {{ j }}u < p.nb) { out_scores[(r0 + {{ i }}u) * p.ld + c0 + {{ j }}u] = acc_{{ i }}_{{ j }}; }
{% endfor %}  }
{% endfor %}}

// ---- gather and count
// pairs: per pair query (global), candidate (global), range start, range end (global).
// groups: per group first pair, number of pairs (1..K), all of one query.

fn score_at(i: u32) -> f32 {
{% if vec_s %}  return scores[i / 4u][i % 4u];
{% else %}  return scores[i];
{% endif %}}

@compute @workgroup_size(64)
fn gather(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 64u;
  if (i >= p.n) { return; }
  let pi = p.first + i;
  let q = pairs[4u * pi] - p.q0;
  let c = pairs[4u * pi + 1u];
  if (c >= p.block_start && c - p.block_start < p.nb) {
    own[pi] = score_at(q * p.ld + c - p.block_start);
  }
}

const K = {{ K }}u;
const WG = {{ WG }}u;
var<workgroup> part: array<u32, {{ 2 * K * WG }}>;

@compute @workgroup_size({{ WG }})
fn count(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u,
         @builtin(num_workgroups) nwg: vec3u) {
  let gi = p.first + wid.x + wid.y * nwg.x; // uniform within the workgroup
  if (gi >= p.first + p.n) { return; }
  var p0 = gi;
  var np = 1u;
{% if grouped %}  p0 = groups[2u * gi];
  np = groups[2u * gi + 1u];
{% endif %}  let q = pairs[4u * p0] - p.q0;
  // Unused slots repeat the last pair; their counts are never written.
{% for r in range(K) %}  let i{{ r }} = p0 + min({{ r }}u, np - 1u);
  let s{{ r }} = own[i{{ r }}];
  let c{{ r }} = pairs[4u * i{{ r }} + 1u];
  let lo{{ r }} = pairs[4u * i{{ r }} + 2u];
  let hi{{ r }} = pairs[4u * i{{ r }} + 3u];
  var na{{ r }} = 0u;
  var nr{{ r }} = 0u;
{% endfor %}
{% if vec_s %}  let row4 = q * (p.ld / 4u);
  for (var j = lid * 4u; j < p.nb; j += WG * 4u) {
    let v = scores[row4 + j / 4u];
{% for e in range(4) %}    {
      let x = v[{{ e }}];
      let g = p.block_start + j + {{ e }}u;
      let ok = j + {{ e }}u < p.nb; // the row's padding is never written
{% for r in range(K) %}      {
        let a = ok && (x > s{{ r }} || (x == s{{ r }} && g < c{{ r }}));
        na{{ r }} += select(0u, 1u, a);
        nr{{ r }} += select(0u, 1u, a && g >= lo{{ r }} && g < hi{{ r }});
      }
{% endfor %}    }
{% endfor %}  }
{% else %}  let row = q * p.ld;
  for (var j = lid; j < p.nb; j += WG) {
    let x = scores[row + j];
    let g = p.block_start + j;
{% for r in range(K) %}    {
      let a = x > s{{ r }} || (x == s{{ r }} && g < c{{ r }});
      na{{ r }} += select(0u, 1u, a);
      nr{{ r }} += select(0u, 1u, a && g >= lo{{ r }} && g < hi{{ r }});
    }
{% endfor %}  }
{% endif %}
  // Per-thread partial counts, then one thread per counter sums them.
{% for r in range(K) %}  part[{{ 2 * r }}u * WG + lid] = na{{ r }};
  part[{{ 2 * r + 1 }}u * WG + lid] = nr{{ r }};
{% endfor %}  workgroupBarrier();
  for (var t = lid; t < 2u * np; t += WG) {
    var sum = 0u;
    for (var w = 0u; w < WG; w++) { sum += part[t * WG + w]; }
    counts[2u * p0 + t] += sum;
  }
}
