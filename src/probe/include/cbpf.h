/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A classic BPF interpreter running inside an eBPF program: evaluates the
 * tcpdump filter libpcap compiled (linktype RAW, from the IP header) on the
 * packet bytes copied into the per-CPU cbpf_pkt state.
 *
 * Why interpret instead of translating cBPF to eBPF and splicing it in:
 * the program stays one fixed, verified object (no instruction patching
 * before load, no per-filter verifier surprises), and the cost is a
 * bpf_loop() iteration per executed instruction, paid only by packets not
 * yet tracked. src/filter/cbpf.rs is the reference this file mirrors case
 * by case; user space validates the program (length, forward jumps, slots)
 * before it gets here.
 */
#ifndef NETWHY_CBPF_H
#define NETWHY_CBPF_H

/* Instruction count, frozen before load; 0 = no filter, match all. */
const volatile __u32 cfg_cbpf_len = 0;

/* The program itself lives in a map, not in rodata: with frozen constants
 * the verifier would execute every path of the filter symbolically in every
 * program (seconds of load time); here it checks the interpreter once per
 * program, whatever the filter. */
struct nw_cbpf_prog {
	struct nw_cbpf_insn insns[NW_CBPF_MAX];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct nw_cbpf_prog);
} cbpf_prog SEC(".maps");

/* The evaluator's whole state, per CPU: the packet bytes (+4 so a masked
 * offset's word load stays inside the value) and the registers. Kept in a
 * map value rather than on the stack on purpose: the verifier does not
 * track map contents, so every bpf_loop iteration starts from the same
 * abstract state and the callback is verified in one pass instead of once
 * per reachable register state. */
struct nw_cbpf_state {
	__u32 a, x, pc, ret;
	__u32 caplen;  /* valid bytes in b[] */
	__u32 wirelen; /* packet length from the network header */
	__u32 m[16];
	__u8 b[NW_PKT_MAX + 4];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct nw_cbpf_state);
} cbpf_pkt SEC(".maps");

/* Load `size` (1, 2, 4) bytes big-endian at `off`; false past caplen. */
static __always_inline bool cbpf_load(struct nw_cbpf_state *p, __u32 off, __u32 size, __u32 *out)
{
	if (off >= NW_PKT_MAX || off + size > p->caplen)
		return false;
	/* Re-mask where the verifier sees it: clang drops a plain mask after
	 * the range check above, and the verifier needs the bound on the
	 * register it adds to the pointer. */
	asm volatile("%0 &= 255" : "+r"(off));
	if (size == 1)
		*out = p->b[off];
	else if (size == 2)
		*out = ((__u32)p->b[off] << 8) | p->b[off + 1];
	else
		*out = ((__u32)p->b[off] << 24) | ((__u32)p->b[off + 1] << 16) |
		       ((__u32)p->b[off + 2] << 8) | p->b[off + 3];
	return true;
}

static __always_inline __u32 cbpf_size(__u16 code)
{
	switch (code & 0x18) {
	case 0x00: return 4;
	case 0x08: return 2;
	default: return 1;
	}
}

/* Stop with result `r` (0 = no match). */
#define CBPF_RET(r) do { s->ret = (r); return 1; } while (0)

/* One instruction per bpf_loop iteration; returns 1 to stop the loop. */
static long cbpf_step(__u64 idx, void *unused)
{
	__u32 zero = 0, pc, v;
	struct nw_cbpf_prog *prog;
	struct nw_cbpf_state *s = bpf_map_lookup_elem(&cbpf_pkt, &zero);

	if (!s)
		return 1;
	pc = s->pc;
	if (pc >= NW_CBPF_MAX || pc >= cfg_cbpf_len)
		CBPF_RET(0);
	prog = bpf_map_lookup_elem(&cbpf_prog, &zero);
	if (!prog)
		CBPF_RET(0);
	asm volatile("%0 &= 127" : "+r"(pc));
	__u16 code = prog->insns[pc].code;
	__u8 jt = prog->insns[pc].jt, jf = prog->insns[pc].jf;
	__u32 k = prog->insns[pc].k;
	s->pc = pc + 1;

	switch (code & 0x07) {
	case 0x00: /* LD */
		switch (code & 0xe0) {
		case 0x00: s->a = k; break;
		case 0x20:
			if (!cbpf_load(s, k, cbpf_size(code), &v))
				CBPF_RET(0);
			s->a = v;
			break;
		case 0x40:
			if (!cbpf_load(s, s->x + k, cbpf_size(code), &v))
				CBPF_RET(0);
			s->a = v;
			break;
		case 0x60: s->a = s->m[k & 15]; break;
		case 0x80: s->a = s->wirelen; break;
		default: CBPF_RET(0);
		}
		break;
	case 0x01: /* LDX */
		switch (code & 0xe0) {
		case 0x00: s->x = k; break;
		case 0x60: s->x = s->m[k & 15]; break;
		case 0x80: s->x = s->wirelen; break;
		case 0xa0:
			if (!cbpf_load(s, k, 1, &v))
				CBPF_RET(0);
			s->x = (v & 0xf) * 4;
			break;
		default: CBPF_RET(0);
		}
		break;
	case 0x02: s->m[k & 15] = s->a; break; /* ST */
	case 0x03: s->m[k & 15] = s->x; break; /* STX */
	case 0x04: /* ALU */
		v = (code & 0x08) ? s->x : k;
		switch (code & 0xf0) {
		case 0x00: s->a += v; break;
		case 0x10: s->a -= v; break;
		case 0x20: s->a *= v; break;
		case 0x30:
			if (!v)
				CBPF_RET(0);
			s->a /= v;
			break;
		case 0x40: s->a |= v; break;
		case 0x50: s->a &= v; break;
		case 0x60: s->a = v >= 32 ? 0 : s->a << v; break;
		case 0x70: s->a = v >= 32 ? 0 : s->a >> v; break;
		case 0x80: s->a = -s->a; break;
		case 0x90:
			if (!v)
				CBPF_RET(0);
			s->a %= v;
			break;
		case 0xa0: s->a ^= v; break;
		default: CBPF_RET(0);
		}
		break;
	case 0x05: { /* JMP: forward only (validated in user space) */
		bool taken;
		v = (code & 0x08) ? s->x : k;
		switch (code & 0xf0) {
		case 0x00: s->pc += k; return 0;
		case 0x10: taken = s->a == v; break;
		case 0x20: taken = s->a > v; break;
		case 0x30: taken = s->a >= v; break;
		case 0x40: taken = (s->a & v) != 0; break;
		default: CBPF_RET(0);
		}
		s->pc += taken ? jt : jf;
		break;
	}
	case 0x06: /* RET */
		switch (code & 0x18) {
		case 0x10: CBPF_RET(s->a);
		case 0x08: CBPF_RET(s->x);
		default: CBPF_RET(k);
		}
	default: /* MISC */
		if ((code & 0xf8) == 0x80)
			s->a = s->x; /* TXA */
		else
			s->x = s->a; /* TAX */
		break;
	}
	return 0;
}

/* True when the filter accepts the packet already copied into p->b (or
 * there is no filter). Forward-only jumps bound the run to one pass. */
static __always_inline bool cbpf_match(struct nw_cbpf_state *p, __u32 caplen, __u32 wirelen)
{
	if (!cfg_cbpf_len)
		return true;
	p->a = p->x = p->pc = p->ret = 0;
	p->caplen = caplen;
	p->wirelen = wirelen;
	bpf_loop(cfg_cbpf_len, cbpf_step, 0, 0);
	return p->ret != 0;
}

#endif
