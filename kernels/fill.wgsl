// Fills a buffer with one 32-bit pattern (zeroing, NaN poisoning, constant init).
// @bindings generated from FILL in runtime.ts:
//   p: Params { count: u32, value: u32 }
//   out: read_write array<u32>

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i < p.count) { out[i] = p.value; }
}
