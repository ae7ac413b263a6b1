// Embedding lookup (row gather) and its gradient (deterministic scatter-add), over one row chunk
// [row_start, row_start + chunk_rows) of a table that may be split across several buffers.
// @bindings generated from EMBEDDING in embedding.ts:
//   gather: gp: Params_gp { count: u32, h: u32, row_start: u32, chunk_rows: u32, accumulate: u32 };
//     table (read), ids (read, u32), out (read_write)
//   scatter_add: sp: Params_sp { count: u32, h: u32, row_start: u32, chunk_rows: u32 };
//     d_out (read), unique_ids, offsets, token_index (read, u32), d_table (read_write)

const WG: u32 = 256u;

// One invocation per output element; tokens whose id lies outside the chunk are left alone.
@compute @workgroup_size(WG)
fn gather(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= gp.count) { return; }
  let t = i / gp.h;
  let j = i - t * gp.h;
  let id = ids[t];
  if (id < gp.row_start || id - gp.row_start >= gp.chunk_rows) { return; }
  let v = table[(id - gp.row_start) * gp.h + j];
  if (gp.accumulate != 0u) { out[i] += v; } else { out[i] = v; }
}

// dTable[id − row_start] += Σ_{t in the group of id} dOut[t], tokens of a group in ascending order.

// One invocation per (unique id, column): no two invocations touch the same element.
@compute @workgroup_size(WG)
fn scatter_add(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= sp.count) { return; }
  let u = i / sp.h;
  let j = i - u * sp.h;
  let id = unique_ids[u];
  if (id < sp.row_start || id - sp.row_start >= sp.chunk_rows) { return; }
  var s = 0.0;
  for (var k = offsets[u]; k < offsets[u + 1u]; k++) { s += d_out[token_index[k] * sp.h + j]; }
  d_table[(id - sp.row_start) * sp.h + j] += s;
}
