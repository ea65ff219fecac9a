// SPDX-License-Identifier: GPL-2.0
/*
 * The skb function probe: one handler behind every kernel function that
 * takes a `struct sk_buff *` (pwru's approach), reachable through three
 * backends, plus the skb tracepoints that every kernel with BTF has:
 *
 *   kprobe.multi  one program, one link for all functions; the attach cookie
 *                 is (argument position << 32 | function id)
 *   kprobe        the same handler, one link per function, same cookie
 *   fentry        five programs, one per argument position (a tracing
 *                 program may only read the arguments its target has);
 *                 user space loads a copy per function and puts the id in
 *                 the link's cookie
 *   tp_btf        netif_receive_skb, net_dev_queue, net_dev_xmit,
 *                 kfree_skb, consume_skb: the fallback where the kernel
 *                 refuses all three
 *
 * Each hit is counted per function (hits map, with the time of the first
 * hit so the path can be ordered), or, for `netwhy trace` (cfg_steps), a
 * hit on an skb the path probe tracks becomes a step of that packet: user
 * space hands this object the path probe's `tracked`, `events`, `next_id`
 * and `counters` maps before load, so both probes write one timeline; and
 * copies of tracked packets become tracked packets themselves (clone.h).
 */
#include "../include/vmlinux_min.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "../include/skbfunc.h"
#include "../include/event.h"
#include "../include/skb.h"

char LICENSE[] SEC("license") = "GPL";

/* x86-64 argument registers; CO-RE relocates the offsets. */
struct pt_regs {
	unsigned long ax;
	unsigned long r8;
	unsigned long cx;
	unsigned long dx;
	unsigned long si;
	unsigned long di;
} __attribute__((preserve_access_index));

struct iphdr_min {
	__u8 ihl_version;
	__u8 tos;
	__be16 tot_len;
	__be16 id;
	__be16 frag_off;
	__u8 ttl;
	__u8 protocol;
};

/* ---- configuration, frozen before load ---- */
const volatile __s32 cfg_port = -1;   /* match TCP/UDP src or dst port */
const volatile __u32 cfg_tp_base = 0; /* first tracepoint slot */
/* Emit steps of tracked packets instead of counting; hook = base + id. */
const volatile bool cfg_steps = false;
const volatile __u32 cfg_hook_base = 0;
/* The path probe's age limit of a tracked entry (its cfg_track_ns). */
const volatile __u64 cfg_track_ns = 2000000000ULL;
/* Steps of the cloning functions: hook = base + index in user space's
 * list of them (the attach cookie). */
const volatile __u32 cfg_clone_hook_base = 0;

/* The path probe's events ring and tracked map (reused fds when
 * cfg_steps; unused when counting), and the step helpers. */
#include "../include/track.h"

/* The path probe's packet id counter and its counters (shared too). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} next_id SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, NW_PCNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, NW_SKBFUNC_MAX);
	__type(key, __u32);
	__type(value, struct nw_hits);
} hits SEC(".maps");

/* Does the skb carry TCP/UDP with cfg_port on either side? Packets whose
 * network header is not set yet (early on transmit) do not match. */
static __always_inline bool port_matches(struct sk_buff *skb)
{
	__u16 nh = BPF_CORE_READ(skb, network_header);
	unsigned char *head = BPF_CORE_READ(skb, head);
	__u8 first, proto;
	__u32 l4;
	__be16 ports[2];

	if (nh == 0xffff || !head)
		return false;
	if (bpf_probe_read_kernel(&first, 1, head + nh))
		return false;
	if ((first >> 4) == 4) {
		struct iphdr_min ip;

		if (bpf_probe_read_kernel(&ip, sizeof(ip), head + nh))
			return false;
		if (ip.frag_off & bpf_htons(0x1fff))
			return false; /* a non-first fragment has no ports */
		proto = ip.protocol;
		l4 = nh + (ip.ihl_version & 0xf) * 4;
	} else if ((first >> 4) == 6) {
		/* next header at byte 6; extension headers are not walked */
		if (bpf_probe_read_kernel(&proto, 1, head + nh + 6))
			return false;
		l4 = nh + 40;
	} else {
		return false;
	}
	if (proto != 6 && proto != 17)
		return false;
	if (bpf_probe_read_kernel(ports, sizeof(ports), head + l4))
		return false;
	return ports[0] == bpf_htons(cfg_port) || ports[1] == bpf_htons(cfg_port);
}


/* One step of a packet the path probe tracks. Only its maps decide
 * (filters ran where the packet started); fate stays with the tracepoints. */
static __always_inline int emit_step(__u32 id, struct sk_buff *skb)
{
	__u64 now = bpf_ktime_get_ns();
	struct nw_track *t = tracked_at(skb, now);
	struct nw_path_event *e;

	if (!t)
		return 0;
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e)
		return 0;
	fill_step(e, skb, t->packet, cfg_hook_base + id, now);
	e->clone_of = t->clone_of;
	/* trace polls every few ms; the path probe forces wake-ups. */
	bpf_ringbuf_submit(e, BPF_RB_NO_WAKEUP);
	return 0;
}

static __always_inline int on_skb(__u32 id, struct sk_buff *skb)
{
	struct nw_hits *h;

	if (!skb)
		return 0;
	if (cfg_steps)
		return emit_step(id, skb);
	if (cfg_port >= 0 && !port_matches(skb))
		return 0;
	h = bpf_map_lookup_elem(&hits, &id);
	if (!h)
		return 0;
	if (!h->first_ns)
		h->first_ns = bpf_ktime_get_ns();
	__sync_fetch_and_add(&h->count, 1);
	return 0;
}

/* All five registers are read first, volatile: a switch over plain ctx
 * loads lets clang compute the ctx offset, which the verifier refuses. */
static __always_inline struct sk_buff *reg_arg(struct pt_regs *ctx, __u32 pos)
{
	unsigned long a0 = *(volatile unsigned long *)&ctx->di;
	unsigned long a1 = *(volatile unsigned long *)&ctx->si;
	unsigned long a2 = *(volatile unsigned long *)&ctx->dx;
	unsigned long a3 = *(volatile unsigned long *)&ctx->cx;
	unsigned long a4 = *(volatile unsigned long *)&ctx->r8;

	switch (pos) {
	case 0:
		return (struct sk_buff *)a0;
	case 1:
		return (struct sk_buff *)a1;
	case 2:
		return (struct sk_buff *)a2;
	case 3:
		return (struct sk_buff *)a3;
	case 4:
		return (struct sk_buff *)a4;
	}
	return 0;
}

static __always_inline int on_kprobe(struct pt_regs *ctx)
{
	__u64 cookie = bpf_get_attach_cookie(ctx);

	return on_skb((__u32)cookie, reg_arg(ctx, (__u32)(cookie >> 32)));
}

SEC("kprobe.multi")
int nw_skb_kmulti(struct pt_regs *ctx)
{
	return on_kprobe(ctx);
}

SEC("kprobe")
int nw_skb_kprobe(struct pt_regs *ctx)
{
	return on_kprobe(ctx);
}

/* fentry: ctx[i] is argument i; the cookie is the function id. */
#define FENTRY_AT(pos)                                                          \
	SEC("fentry")                                                           \
	int nw_skb_fentry##pos(__u64 *ctx)                                      \
	{                                                                       \
		return on_skb((__u32)bpf_get_attach_cookie(ctx),                \
			      (struct sk_buff *)ctx[pos]);                      \
	}
FENTRY_AT(0)
FENTRY_AT(1)
FENTRY_AT(2)
FENTRY_AT(3)
FENTRY_AT(4)

SEC("tp_btf/netif_receive_skb")
int BPF_PROG(nw_tp_netif_receive_skb, struct sk_buff *skb)
{
	return on_skb(cfg_tp_base + NW_TP_NETIF_RECEIVE_SKB, skb);
}

SEC("tp_btf/net_dev_queue")
int BPF_PROG(nw_tp_net_dev_queue, struct sk_buff *skb)
{
	return on_skb(cfg_tp_base + NW_TP_NET_DEV_QUEUE, skb);
}

SEC("tp_btf/net_dev_xmit")
int BPF_PROG(nw_tp_net_dev_xmit, struct sk_buff *skb)
{
	return on_skb(cfg_tp_base + NW_TP_NET_DEV_XMIT, skb);
}

SEC("tp_btf/kfree_skb")
int BPF_PROG(nw_tp_kfree_skb, struct sk_buff *skb)
{
	return on_skb(cfg_tp_base + NW_TP_KFREE_SKB, skb);
}

SEC("tp_btf/consume_skb")
int BPF_PROG(nw_tp_consume_skb, struct sk_buff *skb)
{
	return on_skb(cfg_tp_base + NW_TP_CONSUME_SKB, skb);
}

#include "../include/clone.h"
