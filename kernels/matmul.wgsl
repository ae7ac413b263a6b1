// Tiled matmul: C = alpha·op(A)·op(B) (+ C) (+ bias[col] with the `has_bias` template flag),
// batched over dispatch z; with the `gelu` template flag also y = GELU(C) (exact erf GELU, the
// functions of erf.wgsl that gelu.wgsl uses too).
//
// Split-K: dispatch z also counts `splits` K ranges of `kChunk`; each writes its own partial
// product at C + z·strideC (the caller passes a [batch·splits, M, N] buffer, alpha 1, no bias or
// accumulate) and matmul_splitk.wgsl sums the partials in a fixed order.
// op(A) is [M,K], stored [M,K] (lda = K) or, with TRANS_A, [K,M] (lda = M); op(B) is [K,N], stored
// [K,N] (ldb = N) or, with TRANS_B, [N,K] (ldb = K).
//
// A workgroup of WX×WY threads owns a BM×BN tile of C (BM = TM·WY, BN = TN·WX); each thread a
// TM×TN register block, TM = 4·tm4 rows and TN = 4·tn4 columns. K advances BK at a time through
// workgroup memory. The tiles keep the operand's memory layout (k-contiguous or m/n-contiguous), so
// a thread copies whole vec4 groups without scattering; the inner loop takes 4 k at a time and
// turns either layout into "4 k of one row" (a_i) and "4 k of one column" (b_j).
//
// Template variables (they change code, not just values): tm4/tn4 size the register block, which
// is unrolled here because WGSL function arrays need constant sizes and software rasterisers
// (lavapipe) spill dynamically indexed arrays to memory; vec_a/vec_b bind that operand as
// array<vec4f> (the caller guarantees its contiguous length and view offset are multiples of 4),
// otherwise a group's four elements are read one by one with per-element bounds checks.
//
// Element types (the one place a type changes): a_t/b_t are the operands' storage types (f32, or
// f16 under `enable f16;` where the device has `shader-f16`); w_t is the type of the workgroup
// tiles and of the 4-k dot products. With w_t = f32 every f16 operand is widened on its way into
// workgroup memory and all arithmetic is f32; with w_t = f16 (an experiment, see PERFORMANCE.md
// "f16") both tiles are f16 (an f32 operand is rounded to f16 on load), each 4-term dot runs in
// f16 and only the accumulators are f32. Outputs, bias and partial products stay f32.
{% if enable_f16 %}enable f16;
{% endif %}
// @bindings generated from MATMUL in matmul.ts:
//   p: Params { M: u32, N: u32, K: u32, strideA: u32, strideB: u32, strideC: u32 (batch strides,
//     in elements; 0 for one batch), alpha: f32, accumulate: u32 (1: C += …, 0: C = …),
//     kChunk: u32 (K range of one split: a multiple of BK; K itself without split-K),
//     splits: u32 (dispatch z = batch entry · splits + split) }
//   a, b (read; array<vec4<a_t>> with vec_a, else array<a_t>; likewise b), c (read_write),
//   bias (read; with has_bias only), y (read_write, = GELU(C); with gelu only)
{% if gelu %}
// #include "erf.wgsl"
{% endif %}
override WX: u32 = 8u; // threads along N
override WY: u32 = 8u; // threads along M
override BK: u32 = 16u; // K tile (multiple of 4)
override TRANS_A: bool = false;
override TRANS_B: bool = false;

const TM = {{ tm4 * 4 }}u; // rows per thread
const TN = {{ tn4 * 4 }}u; // columns per thread

// Tiles in vec4 units, laid out as in memory: A is [BM][BK/4] (k-contiguous) or [BK][BM/4]
// (TRANS_A, m-contiguous); B is [BN][BK/4] (TRANS_B) or [BK][BN/4].
var<workgroup> As: array<vec4<{{ w_t }}>, BK * WY * TM / 4u>;
var<workgroup> Bs: array<vec4<{{ w_t }}>, BK * WX * TN / 4u>;

// Four elements of the stored operand starting at flat element `i` (a multiple of 4 in vec mode),
// zero where the group leaves the matrix: `inRow` says whether the row exists, `col` is the first
// index along the contiguous axis and `len` that axis' length.
fn loadA4(i: u32, inRow: bool, col: u32, len: u32) -> vec4<{{ w_t }}> {
{% if vec_a %}  if (inRow && col < len) { return vec4<{{ w_t }}>(a[i / 4u]); }
  return vec4<{{ w_t }}>(0.0);
{% else %}  var v = vec4<{{ w_t }}>(0.0);
  if (inRow) {
    for (var e = 0u; e < 4u; e++) { if (col + e < len) { v[e] = {{ w_t }}(a[i + e]); } }
  }
  return v;
{% endif %}}

fn loadB4(i: u32, inRow: bool, col: u32, len: u32) -> vec4<{{ w_t }}> {
{% if vec_b %}  if (inRow && col < len) { return vec4<{{ w_t }}>(b[i / 4u]); }
  return vec4<{{ w_t }}>(0.0);
{% else %}  var v = vec4<{{ w_t }}>(0.0);
  if (inRow) {
    for (var e = 0u; e < 4u; e++) { if (col + e < len) { v[e] = {{ w_t }}(b[i + e]); } }
  }
  return v;
{% endif %}}

// Writes four results of row `row` starting at column `col` (epilogue: alpha, bias, accumulate,
// GELU).
fn store4(base: u32, row: u32, col: u32, v: vec4f) {
  if (row >= p.M) { return; }
  for (var e = 0u; e < 4u; e++) {
    let n = col + e;
    if (n >= p.N) { return; }
    let idx = base + row * p.N + n;
    var r = p.alpha * v[e];
{% if has_bias %}    r += bias[n];
{% endif %}    if (p.accumulate != 0u) { r += c[idx]; }
    c[idx] = r;
{% if gelu %}    y[idx] = r * normal_cdf(r);
{% endif %}  }
}

@compute @workgroup_size(WX, WY, 1)
fn main(
  @builtin(local_invocation_id) lid: vec3u,
  @builtin(local_invocation_index) li: u32,
  @builtin(workgroup_id) wg: vec3u,
) {
  let BM = TM * WY;
  let BN = TN * WX;
  let BK4 = BK / 4u;
  let threads = WX * WY;
  let row0 = wg.y * BM;
  let col0 = wg.x * BN;
  let split = wg.z % p.splits;
  let baseA = (wg.z / p.splits) * p.strideA;
  let baseB = (wg.z / p.splits) * p.strideB;
  let kBegin = split * p.kChunk;
  let kEnd = min(p.K, kBegin + p.kChunk);

  // acc_i_q: row i of the block, columns 4q..4q+3.
{% for i in range(tm4 * 4) %}{% for q in range(tn4) %}  var acc_{{ i }}_{{ q }} = vec4f(0.0);
{% endfor %}{% endfor %}
  for (var k0 = kBegin; k0 < kEnd; k0 += BK) {
    for (var g = li; g < BM * BK4; g += threads) {
      if (TRANS_A) {
        let kk = g / (BM / 4u);
        let m = row0 + (g % (BM / 4u)) * 4u;
        As[g] = loadA4(baseA + (k0 + kk) * p.M + m, k0 + kk < kEnd, m, p.M);
      } else {
        let m = row0 + g / BK4;
        let k = k0 + (g % BK4) * 4u;
        As[g] = loadA4(baseA + m * p.K + k, m < p.M, k, kEnd);
      }
    }
    for (var g = li; g < BN * BK4; g += threads) {
      if (TRANS_B) {
        let n = col0 + g / BK4;
        let k = k0 + (g % BK4) * 4u;
        Bs[g] = loadB4(baseB + n * p.K + k, n < p.N, k, kEnd);
      } else {
        let kk = g / (BN / 4u);
        let n = col0 + (g % (BN / 4u)) * 4u;
        Bs[g] = loadB4(baseB + (k0 + kk) * p.N + n, k0 + kk < kEnd, n, p.N);
      }
    }
    workgroupBarrier();
    for (var kq = 0u; kq < BK4; kq++) {
      // a_i = 4 k of block row i; b_j = 4 k of block column j.
{% for i in range(tm4 * 4) %}      var a_{{ i }}: vec4<{{ w_t }}>;
{% endfor %}{% for j in range(tn4 * 4) %}      var b_{{ j }}: vec4<{{ w_t }}>;
{% endfor %}      if (TRANS_A) {
{% for kk in range(4) %}{% for q in range(tm4) %}        {
          let v = As[(kq * 4u + {{ kk }}u) * (BM / 4u) + lid.y * {{ tm4 }}u + {{ q }}u];
          a_{{ q * 4 }}[{{ kk }}] = v.x;
          a_{{ q * 4 + 1 }}[{{ kk }}] = v.y;
          a_{{ q * 4 + 2 }}[{{ kk }}] = v.z;
          a_{{ q * 4 + 3 }}[{{ kk }}] = v.w;
        }
{% endfor %}{% endfor %}      } else {
{% for i in range(tm4 * 4) %}        a_{{ i }} = As[(lid.y * TM + {{ i }}u) * BK4 + kq];
{% endfor %}      }
      if (TRANS_B) {
{% for j in range(tn4 * 4) %}        b_{{ j }} = Bs[(lid.x * TN + {{ j }}u) * BK4 + kq];
{% endfor %}      } else {
{% for kk in range(4) %}{% for q in range(tn4) %}        {
          let v = Bs[(kq * 4u + {{ kk }}u) * (BN / 4u) + lid.x * {{ tn4 }}u + {{ q }}u];
          b_{{ q * 4 }}[{{ kk }}] = v.x;
          b_{{ q * 4 + 1 }}[{{ kk }}] = v.y;
          b_{{ q * 4 + 2 }}[{{ kk }}] = v.z;
          b_{{ q * 4 + 3 }}[{{ kk }}] = v.w;
        }
{% endfor %}{% endfor %}      }
{% for i in range(tm4 * 4) %}{% for q in range(tn4) %}      acc_{{ i }}_{{ q }} += vec4f({% if w_t == "f16" %}vec4h({% endif %}dot(a_{{ i }}, b_{{ q * 4 }}), dot(a_{{ i }}, b_{{ q * 4 + 1 }}), dot(a_{{ i }}, b_{{ q * 4 + 2 }}), dot(a_{{ i }}, b_{{ q * 4 + 3 }}){% if w_t == "f16" %}){% endif %});
{% endfor %}{% endfor %}    }
    workgroupBarrier();
  }

  let baseC = wg.z * p.strideC;
  let r0 = row0 + lid.y * TM;
  let c0 = col0 + lid.x * TN;
{% for i in range(tm4 * 4) %}{% for q in range(tn4) %}  store4(baseC, r0 + {{ i }}u, c0 + {{ q * 4 }}u, acc_{{ i }}_{{ q }});
{% endfor %}{% endfor %}}
