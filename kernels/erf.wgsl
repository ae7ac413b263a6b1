// The exact-erf GELU's helpers, shared by gelu.wgsl and the fused epilogues of matmul.wgsl and
// matmul_splitk.wgsl (`// #include "erf.wgsl"`), so that all of them run the very same code:
// normal_cdf(x) = Φ(x) and what it calls, with their constants. f32 only.
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
