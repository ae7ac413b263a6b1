// Inverted dropout with a counter-based mask, so that the forward and the backward draw the same
// mask without storing it: y[i] = x[i] / (1 − p) where hash(key, offset + i) ≥ threshold (that is
// p·2³²), else 0. The backward of dropout is the same op on the upstream gradient. `offset` places
// a chunk's elements where they lie in the whole batch (GradCache encodes a batch in pieces).
// @bindings generated from DROPOUT in dropout.ts:
//   p: Params { count: u32, offset: u32, key: u32, threshold: u32, scale: f32 }
//   x: read, y: read_write (array<f32>)

// lowbias32 (C. Wellons' hash-prospector): a well-mixed bijection of u32.
fn mix32(v: u32) -> u32 {
  var h = v;
  h ^= h >> 16u;
  h *= 0x7feb352du;
  h ^= h >> 15u;
  h *= 0x846ca68bu;
  h ^= h >> 16u;
  return h;
}

@compute @workgroup_size(256)
fn dropout(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.count) { return; }
  let h = mix32(mix32((p.offset + i) ^ p.key) + p.key);
  y[i] = select(0.0, x[i] * p.scale, h >= p.threshold);
}
