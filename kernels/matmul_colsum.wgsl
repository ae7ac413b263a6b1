// Bias gradient: db[n] += Σ_m dy[m, n] for dy [M, N]. One thread per column sums the rows in order,
// so the result is deterministic (same order every run); neighbouring threads read neighbouring
// columns, so each row is read contiguously.
// @bindings generated from COLSUM in matmul.ts: p: Params { M: u32, N: u32 }; dy (read),
// db (read_write)

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let n = gid.x;
  if (n >= p.N) { return; }
  var s = 0.0;
  for (var m = 0u; m < p.M; m++) { s += dy[m * p.N + n]; }
  db[n] += s;
}
