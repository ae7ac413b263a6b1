// Dynamic loss scaling for mixed-precision training: x *= state[0], in place, where state =
// [scale, clean steps] lives on the GPU and is updated by grad_norm.wgsl's `finish_scaled`; the
// scale is never read back to the host.

// @bindings generated from APPLY in loss_scale.ts:
//   p: Params { count: u32 }
//   x (read_write, scaled in place), ls_state (read: [scale, clean steps])

@compute @workgroup_size(256)
fn apply(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i < p.count) { x[i] = x[i] * ls_state[0]; }
}
