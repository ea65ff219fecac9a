#!/usr/bin/env bash
# Time and peak RSS of `netwhy-vmcore dmesg` against makedumpfile --dump-dmesg
# and vmcore-dmesg on the same full-size qemu dumps, printed as ratios.
# Usage: crates/vmcore/bench/run.sh   (builds fixtures and a release binary)
# Needs: bash >= 5 (EPOCHREALTIME), /usr/bin/time (Debian package `time`),
# makedumpfile, kexec-tools. RUNS=N rounds (default 101); STATIC=0 skips
# the statically linked build (the one to put in a kdump initramfs).
#
# Each round runs every tool once, in turn, so load from other processes
# hits all of them alike; times are medians over the rounds, taken with
# bash's EPOCHREALTIME around the command (no extra process in the interval).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
root=$(cd "$here/../.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}
runs=${RUNS:-101}
cargo build -q --release -p netwhy-vmcore --manifest-path "$root/Cargo.toml"
dir=$(cargo run -q --release -p netwhy-vmcore --example make-fixtures --manifest-path "$root/Cargo.toml")
# NETWHY_VMCORE_BIN=path times another build instead (e.g. an older commit's).
ours=${NETWHY_VMCORE_BIN:-$CARGO_TARGET_DIR/release/netwhy-vmcore}
# The main binary, when it has been built (`cargo build --release`): the same
# code behind `netwhy vmcore dmesg`, with netwhy's larger start-up.
main="$CARGO_TARGET_DIR/release/netwhy"
# The same crate linked statically (glibc crt-static), as one would ship it
# in a kdump initramfs: no shared libraries to load at start-up. Its own
# target dir, so the flags do not invalidate the normal build.
static=""
if [[ ${STATIC:-1} != 0 && $(uname -m) == x86_64 ]]; then
  RUSTFLAGS="-C target-feature=+crt-static" CARGO_TARGET_DIR="$CARGO_TARGET_DIR/static" \
    cargo build -q --release -p netwhy-vmcore --bin netwhy-vmcore \
    --target x86_64-unknown-linux-gnu --manifest-path "$root/Cargo.toml"
  static="$CARGO_TARGET_DIR/static/x86_64-unknown-linux-gnu/release/netwhy-vmcore"
fi
# The whole netwhy linked statically (scripts/build-static): what to copy
# into a kdump initramfs or onto a dead box; no dynamic loader start-up.
static_main=""
if [[ ${STATIC:-1} != 0 && $(uname -m) == x86_64 ]]; then
  static_main=$(CARGO_TARGET_DIR="$CARGO_TARGET_DIR/static-main" "$root/scripts/build-static" 2>/dev/null)
fi
for t in /usr/bin/time makedumpfile vmcore-dmesg; do
  command -v "$t" >/dev/null || { echo "bench: $t missing" >&2; exit 1; }
done
scratch=$(mktemp -u); trap 'rm -f "$scratch"' EXIT

median() { sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)] / 1e6}'; }
rss_mib() {
  local f; f=$(mktemp)
  /usr/bin/time -f '%M' -o "$f" "$@" >/dev/null 2>&1 || true
  awk '{v=$1} END {printf "%.1f", v/1024}' "$f"; rm -f "$f"
}

printf '%-16s %-28s %9s %9s\n' dump tool ms RSS_MiB
for boot in kaslr-wrap nokaslr-bigbuf; do
  elf="$dir/$boot.elf"; mdfelf="$dir/$boot.mdf.elf"; zlib="$dir/$boot.kdump-zlib"
  size=$(( $(stat -c %s "$elf") / 1048576 ))
  names=("spawn (/bin/true)" "netwhy-vmcore (qemu ELF)" "netwhy-vmcore (kdump-zlib)" "vmcore-dmesg" "makedumpfile --dump-dmesg")
  cmds=("/bin/true" "$ours dmesg --no-header $elf" "$ours dmesg --no-header $zlib" "vmcore-dmesg $elf" "makedumpfile --dump-dmesg $mdfelf $scratch")
  extra=()
  if [[ -n $static ]]; then
    names+=("netwhy-vmcore static (ELF)"); cmds+=("$static dmesg --no-header $elf"); extra+=($(( ${#cmds[@]} - 1 )))
  fi
  if [[ -n $static_main ]]; then
    names+=("netwhy vmcore (static netwhy)"); cmds+=("$static_main vmcore dmesg --no-header $elf"); extra+=($(( ${#cmds[@]} - 1 )))
  fi
  if [[ -x $main ]]; then
    names+=("netwhy vmcore (main binary)"); cmds+=("$main vmcore dmesg --no-header $elf"); extra+=($(( ${#cmds[@]} - 1 )))
  fi
  declare -A samples=()
  for _ in $(seq "$runs"); do
    for i in "${!cmds[@]}"; do
      rm -f "$scratch"   # makedumpfile will not overwrite; outside the timing
      # usec from bash's own clock: no subshell inside the interval
      t0=${EPOCHREALTIME/./}; ${cmds[$i]} >/dev/null 2>&1 || true; t1=${EPOCHREALTIME/./}
      samples[$i]+="$((10#$t1 - 10#$t0)) "
    done
  done
  declare -A med=() rss=()
  for i in "${!cmds[@]}"; do
    med[$i]=$(tr ' ' '\n' <<<"${samples[$i]}" | grep . | median)
    rm -f "$scratch"; rss[$i]=$(rss_mib ${cmds[$i]})
    printf '%-16s %-28s %9.3f %9s\n' "$boot" "${names[$i]}" "$(awk -v t="${med[$i]}" 'BEGIN{print t*1000}')" "${rss[$i]}"
  done
  awk -v b="$boot ($size MiB)" -v s="${med[0]}" -v o="${med[1]}" -v v="${med[3]}" -v m="${med[4]}" \
      -v om="${rss[1]}" -v vm="${rss[3]}" -v mm="${rss[4]}" 'BEGIN{
    no=o-s; if (no<0.00001) no=0.00001
    printf "%s: ratio vs vmcore-dmesg %.2fx, vs makedumpfile %.2fx (net of spawn: %.2fx, %.2fx); RSS %s MiB (vmcore-dmesg %s, makedumpfile %s)\n",
      b, v/o, m/o, (v-s)/no, (m-s)/no, om, vm, mm }'
  for i in "${extra[@]}"; do
    awk -v b="$boot" -v n="${names[$i]}" -v t="${med[$i]}" -v v="${med[3]}" 'BEGIN{printf "%s: %s vs vmcore-dmesg %.2fx\n", b, n, v/t}'
  done
  unset samples med rss
done
echo "(ms: median of $runs interleaved warm-cache rounds; ratio > 1 means netwhy is faster)"
echo "vmcore-dmesg cannot read: $(vmcore-dmesg "$dir/kaslr-wrap.phys.elf" 2>&1 >/dev/null | head -1 || true) [qemu paging=false ELF]"
rm -f "$scratch"
echo "makedumpfile cannot read: $(makedumpfile --dump-dmesg "$dir/kaslr-wrap.elf" "$scratch" 2>&1 | grep -v '^$' | head -1 || true) [qemu ELF as is]"
