#!/usr/bin/env bash
# Time and peak RSS of `netwhy-vmcore dmesg` against makedumpfile --dump-dmesg
# and vmcore-dmesg on the same full-size qemu dumps, printed as ratios.
# Usage: crates/vmcore/bench/run.sh   (builds fixtures and a release binary)
# Needs: /usr/bin/time (Debian package `time`), makedumpfile, kexec-tools.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
root=$(cd "$here/../.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}
runs=${RUNS:-7}
cargo build -q --release -p netwhy-vmcore --manifest-path "$root/Cargo.toml"
dir=$(cargo run -q --release -p netwhy-vmcore --example make-fixtures --manifest-path "$root/Cargo.toml")
ours="$CARGO_TARGET_DIR/release/netwhy-vmcore"
for t in /usr/bin/time makedumpfile vmcore-dmesg; do
  command -v "$t" >/dev/null || { echo "bench: $t missing" >&2; exit 1; }
done

# best-of-N wall seconds (ns clock) and max RSS (KiB, GNU time) of a command
measure() {
  local best=999 rss=0 t m t0 t1 tf
  tf=$(mktemp)
  for _ in $(seq "$runs"); do
    t0=$(date +%s%N)
    /usr/bin/time -o "$tf" -f '%M' "$@" >/dev/null 2>&1 || true
    t1=$(date +%s%N)
    t=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.4f", (b-a)/1e9}')
    m=$(tail -1 "$tf")
    best=$(awk -v a="$best" -v b="$t" 'BEGIN{print (b<a)?b:a}')
    if (( m > rss )); then rss=$m; fi
  done
  rm -f "$tf"
  echo "$best $rss"
}
# makedumpfile writes to a file; give it a scratch one.
scratch=$(mktemp); trap 'rm -f "$scratch"' EXIT

# Spawning any process costs ~2 ms on this kind of machine; report it so the
# ratios below can be read net of it.
read -r spawn_t _ < <(measure /bin/true)
echo "process spawn baseline (/bin/true): ${spawn_t}s"
printf '%-16s %-26s %9s %9s\n' dump tool seconds RSS_MiB
for boot in kaslr-wrap nokaslr-bigbuf; do
  elf="$dir/$boot.elf"; mdfelf="$dir/$boot.mdf.elf"
  size=$(( $(stat -c %s "$elf") / 1048576 ))
  read -r o_t o_m < <(measure "$ours" dmesg --no-header "$elf")
  read -r oq_t oq_m < <(measure "$ours" dmesg --no-header "$dir/$boot.kdump-zlib")
  read -r v_t v_m < <(measure vmcore-dmesg "$elf")
  read -r m_t m_m < <(measure bash -c "rm -f $scratch; makedumpfile --dump-dmesg $mdfelf $scratch")
  for row in "netwhy (qemu ELF)|$o_t|$o_m" "netwhy (qemu kdump-zlib)|$oq_t|$oq_m" "vmcore-dmesg|$v_t|$v_m" "makedumpfile --dump-dmesg|$m_t|$m_m"; do
    IFS='|' read -r name t m <<<"$row"
    printf '%-16s %-26s %9s %9.1f\n' "$boot" "$name" "$t" "$(awk -v k="$m" 'BEGIN{print k/1024}')"
  done
  awk -v b="$boot ($size MiB)" -v o="$o_t" -v v="$v_t" -v m="$m_t" -v om="$o_m" -v vm="$v_m" -v mm="$m_m" -v s="$spawn_t" 'BEGIN{
    no=o-s; nv=v-s; nm=m-s; if (no<0.0001) no=0.0001
    printf "%s: time ratio vs vmcore-dmesg %.2fx, vs makedumpfile %.2fx (net of spawn: %.2fx, %.2fx); RSS %.1f MiB (vmcore-dmesg %.1f, makedumpfile %.1f)\n",
      b, (o>0?v/o:0), (o>0?m/o:0), nv/no, nm/no, om/1024, vm/1024, mm/1024 }'
done
echo "(seconds: best of $runs warm-cache runs; ratio > 1 means netwhy is faster; includes process start-up of ~1 ms)"
echo "vmcore-dmesg cannot read: $(vmcore-dmesg "$dir/kaslr-wrap.phys.elf" 2>&1 >/dev/null | head -1 || true) [qemu paging=false ELF]"
rm -f "$scratch"
echo "makedumpfile cannot read: $(makedumpfile --dump-dmesg "$dir/kaslr-wrap.elf" "$scratch" 2>&1 | grep -v '^$' | head -1 || true) [qemu ELF as is]"
