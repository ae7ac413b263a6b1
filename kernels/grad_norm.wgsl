// Global L2 norm of many gradient tensors, deterministic: each tensor's `partial` dispatch writes
// one sum of squares per workgroup (grid-stride loop, then a fixed tree), and `finish` adds all
// partials in a fixed order and derives PyTorch's clip scale min(1, maxNorm / (norm + 1e-6)).

const WG = 256u;
var<workgroup> red: array<f32, WG>;

// Tree sum of red[0..WG) into red[0]; every thread must call it.
fn reduce(lid: u32) {
  for (var half = WG / 2u; half > 0u; half /= 2u) {
    if (lid < half) { red[lid] += red[lid + half]; }
    workgroupBarrier();
  }
}

// @bindings generated from GRAD_NORM in grad_norm.ts:
//   partial: pp: Params_pp { count: u32, slot: u32 }; pa_grad (read) → pa_partials (read_write)
//   finish: fp: Params_fp { count: u32, max_norm: f32 }; fi_partials (read) → fi_out (read_write)

@compute @workgroup_size(256)
fn partial(
  @builtin(workgroup_id) wg: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_index) lid: u32,
) {
  var s = 0.0;
  for (var i = wg.x * WG + lid; i < pp.count; i += nwg.x * WG) {
    let g = pa_grad[i];
    s += g * g;
  }
  red[lid] = s;
  workgroupBarrier();
  reduce(lid);
  if (lid == 0u) { pa_partials[pp.slot + wg.x] = red[0]; }
}

@compute @workgroup_size(256)
fn finish(@builtin(local_invocation_index) lid: u32) {
  var s = 0.0;
  for (var i = lid; i < fp.count; i += WG) { s += fi_partials[i]; }
  red[lid] = s;
  workgroupBarrier();
  reduce(lid);
  if (lid == 0u) {
    let norm = sqrt(red[0]);
    fi_out[0] = norm;
    fi_out[1] = select(1.0, min(1.0, fp.max_norm / (norm + 1e-6)), fp.max_norm > 0.0);
  }
}
