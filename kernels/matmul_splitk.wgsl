// Split-K reduction: C = alpha·Σ_s P[s] (+ bias[col] with has_bias) (+ C), and with the `gelu`
// template flag also y = GELU(C). P holds the partial products of matmul.wgsl,
// [batch·splits, M, N] with the splits of one batch entry adjacent. Each thread owns four
// consecutive outputs (C is contiguous) and adds the splits in index order, so the result is the
// same on every run.
// @bindings generated from SPLITK in matmul.ts:
//   p: Params { count: u32 (batch·M·N), mn: u32 (M·N), n: u32 (N; bias index = column),
//     splits: u32, alpha: f32, accumulate: u32 (1: C += …) }
//   part (read), c (read_write), bias (read; with has_bias only), y (read_write, = GELU(C);
//   with gelu only)
{% if gelu %}
// #include "erf.wgsl"
{% endif %}
const WG: u32 = 256u;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i0 = (gid.x + gid.y * nwg.x * WG) * 4u;
  for (var e = 0u; e < 4u; e++) {
    let i = i0 + e;
    if (i >= p.count) { return; }
    let j = i % p.mn;
    let base = (i / p.mn) * p.splits * p.mn + j;
    var s = 0.0;
    for (var t = 0u; t < p.splits; t++) { s += part[base + t * p.mn]; }
    var r = p.alpha * s;
{% if has_bias %}    r += bias[j % p.n];
{% endif %}    if (p.accumulate != 0u) { r += c[i]; }
    c[i] = r;
{% if gelu %}    y[i] = r * normal_cdf(r);
{% endif %}  }
}
