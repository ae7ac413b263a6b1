// Element-wise activations over flat f32 arrays: exact (erf) GELU and tanh, forward and backward.
// WGSL has no erf and its tanh may be built from sinh/cosh (overflow, poor accuracy near 0), so
// both are written out here with relative accuracy near 1e-7 in f32.
struct Params { count: u32 }
@group(0) @binding(0) var<uniform> p: Params;
// Unary entries (gelu, tanh_forward): in0 → out1. Binary entries: (in0, in1) → out2.
@group(0) @binding(1) var<storage, read> in0: array<f32>;
@group(0) @binding(2) var<storage, read_write> out1: array<f32>;
@group(0) @binding(2) var<storage, read> in1: array<f32>;
@group(0) @binding(3) var<storage, read_write> out2: array<f32>;

const WG: u32 = 256u;
const FRAC_1_SQRT_2: f32 = 0.70710678118654752;
const FRAC_1_SQRT_2PI: f32 = 0.39894228040143268;

// e^a for a ≤ 0 with error of a few ulp for any a: Cody–Waite reduction a = n·ln2 + r with ln2
// split in two (n·LN2_HI is exact), so the builtin only sees |r| ≤ ln2/2, where it is accurate.
fn exp_accurate(a: f32) -> f32 {
  let n = round(a * 1.44269504);
  let r = (a - n * 6.9314575195e-1) - n * 1.4286067653e-6;
  return ldexp(exp(r), i32(n));
}

// erf(z) for |z| < 0.85: Maclaurin series to z¹⁹ (truncation error below 1e-9 relative).
fn erf_small(z: f32) -> f32 {
  let s = z * z;
  return z * (1.1283791671 + s * (-0.37612638903 + s * (0.11283791671 + s * (-0.026866170645 +
    s * (0.0052239776254 + s * (-8.5483270235e-4 + s * (1.2055332982e-4 +
    s * (-1.4925650358e-5 + s * (1.6462114366e-6 + s * -1.6365844691e-7)))))))));
}

// erfc(x/√2) for x/√2 ≥ 0.85 with fractional error near 1.2e-7 (Chebyshev fit of Numerical
// Recipes' erfcc). Rounding x/√2 would cost 2z²·2⁻²⁴ in relative terms, so the exponent −x²/2 is
// formed from x, split so its large part is exact: x = hi + lo, hi with 12 bits (hi² exact),
// x² = hi² + lo·(x + hi).
fn erfc_large(xin: f32) -> f32 {
  let x = min(xin, 18.0); // erfc(18/√2) ≈ 1e-72 underflows anyway
  let t = 1.0 / (1.0 + 0.5 * FRAC_1_SQRT_2 * x);
  let poly = -1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 +
    t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 +
    t * (-0.82215223 + t * 0.17087277))))))));
  let hi = bitcast<f32>(bitcast<u32>(x) & 0xfffff000u);
  let lo = x - hi;
  return t * exp_accurate(-0.5 * hi * hi) * exp_accurate(poly - 0.5 * lo * (x + hi));
}

// Φ(x), the standard normal CDF, accurate in relative terms on both tails.
fn normal_cdf(x: f32) -> f32 {
  let z = x * FRAC_1_SQRT_2;
  if (abs(z) < 0.85) { return 0.5 + 0.5 * erf_small(z); }
  if (x > 0.0) { return 1.0 - 0.5 * erfc_large(x); }
  return 0.5 * erfc_large(-x);
}

// tanh with relative error near 1e-7 (Cephes tanhf): an odd polynomial below 0.625, else
// 1 − 2/(e^{2|x|} + 1), where |x| is capped (tanh(10) rounds to 1 in f32).
fn tanh_f32(x: f32) -> f32 {
  let a = abs(x);
  if (a < 0.625) {
    let s = x * x;
    return x + x * s * ((((-5.70498872745e-3 * s + 2.06390887954e-2) * s - 5.37397155531e-2) * s
      + 1.33314422036e-1) * s - 3.33332819422e-1);
  }
  let e = exp(2.0 * min(a, 10.0));
  return sign(x) * (1.0 - 2.0 / (e + 1.0));
}

fn index(gid: vec3u, nwg: vec3u) -> u32 {
  return gid.x + gid.y * nwg.x * WG;
}

@compute @workgroup_size(WG)
fn gelu(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = index(gid, nwg);
  if (i >= p.count) { return; }
  let x = in0[i];
  out1[i] = x * normal_cdf(x);
}

// dx = dy·(Φ(x) + x·φ(x)); in0 = dy, in1 = x.
@compute @workgroup_size(WG)
fn gelu_backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = index(gid, nwg);
  if (i >= p.count) { return; }
  let x = in1[i];
  let xc = clamp(x, -20.0, 20.0); // φ(±20) underflows; keeps x² finite
  out2[i] = in0[i] * (normal_cdf(x) + xc * FRAC_1_SQRT_2PI * exp_accurate(-0.5 * xc * xc));
}

@compute @workgroup_size(WG)
fn tanh_forward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = index(gid, nwg);
  if (i >= p.count) { return; }
  out1[i] = tanh_f32(in0[i]);
}

// dx = dy·(1 − y²); in0 = dy, in1 = y.
@compute @workgroup_size(WG)
fn tanh_backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = index(gid, nwg);
  if (i >= p.count) { return; }
  let y = in1[i];
  out2[i] = in0[i] * (1.0 - y * y);
}
