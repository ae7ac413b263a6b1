// Tree reductions over one workgroup, shared by softmax.wgsl, layer_norm.wgsl and l2_norm.wgsl
// (`// #include "workgroup_reduce.wgsl"`). The including shader defines `override WG: u32`, the
// workgroup size (a power of two); every invocation gets the result. The pairs are combined in a
// fixed order, so the result is the same on every run.
var<workgroup> red: array<f32, WG>;

// Maximum of `v` over the workgroup.
fn workgroup_max(v: f32, lid: u32) -> f32 {
  red[lid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s / 2u) {
    if (lid < s) { red[lid] = max(red[lid], red[lid + s]); }
    workgroupBarrier();
  }
  let total = red[0];
  workgroupBarrier();
  return total;
}

// Sum of `v` over the workgroup.
fn workgroup_sum(v: f32, lid: u32) -> f32 {
  red[lid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s / 2u) {
    if (lid < s) { red[lid] += red[lid + s]; }
    workgroupBarrier();
  }
  let total = red[0];
  workgroupBarrier();
  return total;
}
