// Global L2 norm of many gradient tensors, deterministic: each tensor's `partial` dispatch writes
// one sum of squares per workgroup (grid-stride loop, then a fixed tree), and `finish` adds all
// partials in a fixed order and derives PyTorch's clip scale min(1, maxNorm / (norm + 1e-6)).
// `finish_scaled` does the same for gradients multiplied by a loss scale s = state[0] (mixed
// precision): it unscales the norm and the clip scale, then updates the scale in place with
// PyTorch's GradScaler rule (`_amp_update_scale_`), so the step never reads back to the host.

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
//   finish_scaled: fs: Params_fs { count: u32, max_norm: f32, growth_interval: f32,
//     growth_factor: f32, backoff_factor: f32 }; fi_partials (read) → fi_out (read_write),
//     fs_state (read_write: [scale, clean steps since the last change])

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

// The sum of the first `count` partials, in a fixed order (valid in red[0] for every thread).
fn sum_partials(lid: u32, count: u32) {
  var s = 0.0;
  for (var i = lid; i < count; i += WG) { s += fi_partials[i]; }
  red[lid] = s;
  workgroupBarrier();
  reduce(lid);
}

fn clip_scale(norm: f32, max_norm: f32) -> f32 {
  return select(1.0, min(1.0, max_norm / (norm + 1e-6)), max_norm > 0.0);
}

@compute @workgroup_size(256)
fn finish(@builtin(local_invocation_index) lid: u32) {
  sum_partials(lid, fp.count);
  if (lid == 0u) {
    let norm = sqrt(red[0]);
    fi_out[0] = norm;
    fi_out[1] = clip_scale(norm, fp.max_norm);
  }
}

// NaN or ±Inf, tested on the bits (as adamw.wgsl does): compilers may fold `x != x` away.
fn non_finite(x: f32) -> bool {
  return (bitcast<u32>(x) & 0x7f800000u) == 0x7f800000u;
}

// out = [norm / s, clip / s, s]: AdamW's g·out[1] is (g/s)·clip, and for a power-of-two s every
// step of this is exact, so the result is bit-identical to the unscaled f32 path. Then the scale
// update: a non-finite norm (found_inf) backs off and resets the counter; otherwise the counter
// grows, and after growth_interval clean steps the scale grows (unless it would overflow) and the
// counter resets.
@compute @workgroup_size(256)
fn finish_scaled(@builtin(local_invocation_index) lid: u32) {
  sum_partials(lid, fs.count);
  if (lid == 0u) {
    let s = fs_state[0];
    let norm = sqrt(red[0]) / s;
    fi_out[0] = norm;
    fi_out[1] = clip_scale(norm, fs.max_norm) / s;
    fi_out[2] = s;
    if (non_finite(norm)) {
      fs_state[0] = s * fs.backoff_factor;
      fs_state[1] = 0.0;
    } else {
      let clean = fs_state[1] + 1.0;
      if (clean >= fs.growth_interval) {
        let grown = s * fs.growth_factor;
        fs_state[0] = select(grown, s, non_finite(grown));
        fs_state[1] = 0.0;
      } else {
        fs_state[1] = clean;
      }
    }
  }
}
