#!/usr/bin/env bash
# Runs `cli.ts bench suite` on a lent GPU machine (no network, 64 MiB of untracked files travel)
# and writes suite.json and suite.md to DIR. Target: under 8 minutes.
#
#   bench/device.sh DIR [--quick]
#
# What must travel with the checkout (neither is committed; both are in .gitignore):
#   bench/deno.gz (or bench/deno.xz)  the Deno binary of this machine's npm install, compressed:
#       gzip -c "$(which deno)" > bench/deno.gz        # ~95 MB → ~40 MB
#       (or: xz -T0 -c "$(which deno)" > bench/deno.xz, smaller; the binary lives under
#        ~/.npm/_npx/*/node_modules/@deno/linux-x64-glibc/deno)
#   bench/deno_dir.tar.gz  Deno's cache of the npm packages cli.ts imports (the shader templates need
#       @huggingface/jinja; Deno installs every npm import of deno.json, tfjs included), since the
#       machine cannot fetch them (~15 MB):
#       rm -rf /tmp/dd && DENO_DIR=/tmp/dd deno cache cli.ts && tar czf bench/deno_dir.tar.gz -C /tmp/dd .
#   (Leave bench/deno_dir.tar.gz out when the machine's default Deno cache already holds them.)
#
# The script says clearly when no Vulkan driver for the GPU is installed: Deno's WebGPU (wgpu) then
# falls back to a CPU adapter (lavapipe) or the OpenGL backend, and the numbers are not the GPU's.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
out="${1:?usage: bench/device.sh DIR [--quick]}"
shift
mkdir -p "$out"
out="$(cd "$out" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# --- Deno ---------------------------------------------------------------------------------------
if [[ -f "$here/deno.gz" ]]; then
  gzip -dc "$here/deno.gz" > "$work/deno"
elif [[ -f "$here/deno.xz" ]]; then
  xz -dc "$here/deno.xz" > "$work/deno"
elif command -v deno > /dev/null; then
  cp "$(command -v deno)" "$work/deno"
else
  echo "device.sh: no Deno: put bench/deno.gz next to this script (gzip -c \"\$(which deno)\" > bench/deno.gz)" >&2
  exit 2
fi
chmod +x "$work/deno"
deno="$work/deno"
echo "deno: $("$deno" --version | head -1)"

if [[ -f "$here/deno_dir.tar.gz" ]]; then
  mkdir -p "$work/deno_dir"
  tar xzf "$here/deno_dir.tar.gz" -C "$work/deno_dir"
  export DENO_DIR="$work/deno_dir"
  cached=(--cached-only)
else
  cached=()
fi

# --- Vulkan driver ------------------------------------------------------------------------------
gpu_name=""
if command -v nvidia-smi > /dev/null; then
  gpu_name="$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1 || true)"
  echo "nvidia-smi: ${gpu_name:-no answer}"
fi
icds=()
for d in /usr/share/vulkan/icd.d /etc/vulkan/icd.d /usr/local/share/vulkan/icd.d; do
  [[ -d "$d" ]] && for f in "$d"/*.json; do [[ -e "$f" ]] && icds+=("$f"); done
done
echo "Vulkan ICD manifests: ${icds[*]:-none}"
hardware=0
for f in "${icds[@]}"; do
  case "$(basename "$f")" in
    lvp_icd*|*lavapipe*|*swiftshader*) ;;
    *) hardware=1 ;;
  esac
done
if [[ -n "$gpu_name" ]] && ! printf '%s\n' "${icds[@]}" | grep -q nvidia_icd; then
  echo "device.sh: WARNING: an NVIDIA GPU is present but no nvidia_icd.json is installed" \
    "(/usr/share/vulkan/icd.d or /etc/vulkan/icd.d): Vulkan cannot reach it, so WebGPU will run on" \
    "a CPU adapter or not at all. Install the NVIDIA driver's Vulkan ICD (libnvidia-gl / nvidia_icd.json)." >&2
elif [[ "$hardware" == 0 ]]; then
  echo "device.sh: WARNING: no Vulkan driver for a GPU found (only software ICDs or none):" \
    "the suite will measure a CPU adapter, not the GPU." >&2
fi

# Which adapter WebGPU picks (the suite's numbers are that adapter's).
adapter="$(cd "$root" && timeout 60 "$deno" eval 'const a = await navigator.gpu?.requestAdapter({ powerPreference: "high-performance" }); console.log(a ? `${a.info.vendor} ${a.info.architecture} ${a.info.device} ${a.info.description}`.trim() : "none")' 2>/dev/null || echo "none")"
echo "WebGPU adapter: $adapter"
case "$adapter" in
  none) echo "device.sh: ERROR: WebGPU found no adapter at all (no Vulkan driver, not even lavapipe)." >&2 ;;
  *llvmpipe*|*lavapipe*|*SwiftShader*|*swiftshader*)
    echo "device.sh: WARNING: WebGPU picked a CPU (software) adapter, so no Vulkan driver for the GPU" \
      "is usable here; the suite will measure the CPU, not the GPU." >&2 ;;
esac

# --- Suite --------------------------------------------------------------------------------------
cd "$root"
start=$(date +%s)
set +e
timeout 470 "$deno" run -A "${cached[@]}" --no-check cli.ts bench suite --out "$out" "$@" \
  2>&1 | tee "$out/suite.log"
status=${PIPESTATUS[0]}
echo "device.sh: suite exit $status after $(( $(date +%s) - start )) s; files in $out"
grep -q "llvmpipe\|lavapipe\|SwiftShader" "$out/suite.md" 2>/dev/null &&
  echo "device.sh: WARNING: the suite ran on a software adapter (see the first line of suite.md)" >&2
exit "$status"
