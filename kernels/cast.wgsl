// Casts between f32 and f16 storage. f16 tensors are read and written as packed u32 words (two
// halves, the lower element in the low bits) with pack2x16float / unpack2x16float, which are core
// WGSL: casting needs no `shader-f16`, only arithmetic on f16 does. One thread per word.
// @bindings generated from CAST in cast.ts:
//   p: Params { count: u32 } (elements)
//   to_f16: src32: read array<f32>, dst16: read_write array<u32>
//   to_f32: src16: read array<u32>, dst32: read_write array<f32> (the same slots)
//   round_f16: x32: read_write array<f32> (rounded in place), dst16 (its f16 copy)

// f16's largest finite value: finite f32 beyond it saturates instead of becoming ±inf (the WGSL
// conversion of an out-of-range value is not defined).
const F16_MAX = 65504.0;

@compute @workgroup_size(256)
fn to_f16(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let w = gid.x + gid.y * nwg.x * 256u;
  let i = 2u * w;
  if (i >= p.count) { return; }
  if (i + 1u < p.count) {
    dst16[w] = pack2x16float(clamp(vec2f(src32[i], src32[i + 1u]), vec2f(-F16_MAX), vec2f(F16_MAX)));
  } else {
    // Odd count: the word's high half is not ours (padding or a neighbour's view); keep it.
    let lo = pack2x16float(vec2f(clamp(src32[i], -F16_MAX, F16_MAX), 0.0)) & 0xffffu;
    dst16[w] = (dst16[w] & 0xffff0000u) | lo;
  }
}

// The other direction binds other variables at the same slots (each entry uses only its own).
@compute @workgroup_size(256)
fn to_f32(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let w = gid.x + gid.y * nwg.x * 256u;
  let i = 2u * w;
  if (i >= p.count) { return; }
  let v = unpack2x16float(src16[w]);
  dst32[i] = v.x;
  if (i + 1u < p.count) { dst32[i + 1u] = v.y; }
}

// to_f16 that also writes the rounded value back, so the f32 tensor and its f16 copy agree.
@compute @workgroup_size(256)
fn round_f16(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let w = gid.x + gid.y * nwg.x * 256u;
  let i = 2u * w;
  if (i >= p.count) { return; }
  if (i + 1u < p.count) {
    let h = pack2x16float(clamp(vec2f(x32[i], x32[i + 1u]), vec2f(-F16_MAX), vec2f(F16_MAX)));
    dst16[w] = h;
    let r = unpack2x16float(h);
    x32[i] = r.x;
    x32[i + 1u] = r.y;
  } else {
    let lo = pack2x16float(vec2f(clamp(x32[i], -F16_MAX, F16_MAX), 0.0)) & 0xffffu;
    dst16[w] = lo | (dst16[w] & 0xffff0000u); // the high half is not ours, as in to_f16
    x32[i] = unpack2x16float(lo).x;
  }
}
