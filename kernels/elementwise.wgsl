// Element-wise ops over flat f32 arrays: out = a + b (residual add) and out += a (accumulate).
// @bindings generated from ADD in elementwise.ts:
//   p: Params { count: u32 }
//   a: read, b: read, out: read_write (array<f32>)

@compute @workgroup_size(256)
fn add(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i < p.count) { out[i] = a[i] + b[i]; }
}
