// Split-K reduction: C = alpha·Σ_s P[s] (+ bias[col]) (+ C), and with the `gelu` template flag
// also y = GELU(C). P holds the partial products of matmul.wgsl, [batch·splits, M, N] with the
// splits of one batch entry adjacent. Each thread owns four consecutive outputs (C is contiguous)
// and adds the splits in index order, so the result is the same on every run.
struct Params {
  count: u32, // batch·M·N
  mn: u32, // M·N
  n: u32, // N (bias index = column)
  splits: u32,
  alpha: f32,
  accumulate: u32, // 1: C += …
  hasBias: u32, // 1: + bias[col]
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> part: array<f32>;
@group(0) @binding(2) var<storage, read_write> c: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
{% if gelu %}@group(0) @binding(4) var<storage, read_write> y: array<f32>; // GELU(C)

{{ gelu_fns }}
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
    if (p.hasBias != 0u) { r += bias[j % p.n]; }
    if (p.accumulate != 0u) { r += c[i]; }
    c[i] = r;
{% if gelu %}    y[i] = r * normal_cdf(r);
{% endif %}  }
}
