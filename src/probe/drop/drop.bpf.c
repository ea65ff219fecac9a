// SPDX-License-Identifier: GPL-2.0
/*
 * netwhy drop probe: every skb the kernel frees as dropped.
 *
 * Attached to tp_btf/kfree_skb, or to the classic skb:kfree_skb tracepoint
 * where BTF raw tracepoints are unavailable; both feed handle_drop(). All
 * filtering and (in the default mode) aggregation happen here, so a flood of
 * drops costs a hash update per packet and nothing crosses to user space
 * until the table is read once a second.
 */
#include "../include/vmlinux_min.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "../include/event.h"
#include "../include/skb.h"

char LICENSE[] SEC("license") = "GPL";

/* ---- configuration, frozen before load (rodata) ---- */
const volatile bool cfg_has_reason = true;    /* kernel passes a drop reason */
const volatile bool cfg_has_rx_sk = false;    /* kfree_skb passes rx_sk (6.11+) */
/* netwhy's own process: drops its syscalls cause (netlink route lookups,
 * nft trace arming, probe sockets) are counted apart, never reported. */
const volatile __u32 cfg_self_tgid = 0;
const volatile __u32 cfg_consumed = 1;        /* SKB_CONSUMED, from BTF */
const volatile bool cfg_aggregate = true;     /* count in agg map */
const volatile bool cfg_events = false;       /* stream to ring buffer */
/* Aggregate mode: also stream the drop that creates a group (the exporter
 * diagnoses one sample per group; cost stays one event per new group). */
const volatile bool cfg_sample_new = false;
const volatile bool cfg_reason_include = false; /* reasons map holds includes */
const volatile bool cfg_reason_exclude = false; /* reasons map holds excludes */
const volatile bool cfg_netns_filter = false;
const volatile bool cfg_ifindex_filter = false;
const volatile __u32 cfg_ifindex = 0;
const volatile bool cfg_ifname_filter = false;
const volatile char cfg_ifname[NW_IFNAMSIZ] = {};
const volatile bool cfg_mark_filter = false;
const volatile __u32 cfg_mark = 0;
const volatile __u32 cfg_mark_mask = 0xffffffff;
const volatile __u16 cfg_ethertype = 0;       /* 0 = any; 0x0800/0x86dd/0x0806 */
const volatile __s16 cfg_l4proto = -1;        /* -1 = any */
const volatile __u8 cfg_host_family = 0;      /* 0 none, 4, 6 */
const volatile __u8 cfg_host[16] = {};
const volatile __s32 cfg_port = -1;           /* -1 = any */
const volatile __u32 cfg_noise_count = 0;
const volatile __u32 cfg_noise_reason[NW_MAX_NOISE] = {}; /* 0xffffffff = any */
const volatile __u64 cfg_noise_start[NW_MAX_NOISE] = {};
const volatile __u64 cfg_noise_end[NW_MAX_NOISE] = {};
/* Queue this many bytes before waking the reader (batched wake-ups). */
const volatile __u64 cfg_wakeup_bytes = 65536;

/* ---- maps ---- */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 << 20);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct nw_agg_key);
	__type(value, struct nw_agg_val);
} agg SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, NW_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

/* reason value -> 1 include, 2 exclude */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 512);
	__type(key, __u32);
	__type(value, __u8);
} reasons SEC(".maps");

/* netns inodes to keep */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, __u8);
} netns_set SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct nw_drop_event);
} scratch SEC(".maps");

/* Referenced so the wire structs reach the object's BTF, from which
 * libbpf-cargo generates the Rust types. */
struct nw_drop_event _nw_drop_event = {};
struct nw_agg_key _nw_agg_key = {};
struct nw_agg_val _nw_agg_val = {};

/* trace_entry.flags bits (kernel/trace/trace.h): set when the event fired
 * in hard-irq, soft-irq or NMI context. Only the classic tracepoint carries
 * them; a tp_btf program cannot tell (preempt_count is a per-CPU variable
 * whose address kallsyms hides unless CONFIG_KALLSYMS_ALL). */
#define TRACE_FLAG_HARDIRQ 0x08
#define TRACE_FLAG_SOFTIRQ 0x10
#define TRACE_FLAG_NMI 0x40

static __always_inline void count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &idx);
	if (v)
		*v += 1;
}

#define H(i) (e->hdr[(i) & (NW_HDR_MAX - 1)])
#define BE16(i) (((__u16)H(i) << 8) | (__u16)H((i) + 1))

/* Copy up to NW_HDR_MAX header bytes into e->hdr; sets hdr_kind/hdr_len. */
static __always_inline void grab_headers(struct sk_buff *skb, struct nw_drop_event *e)
{
	unsigned char *head = BPF_CORE_READ(skb, head);
	__u16 mac = BPF_CORE_READ(skb, mac_header);
	__u16 nh = BPF_CORE_READ(skb, network_header);
	unsigned char *start;

	e->hdr_kind = NW_HDR_NONE;
	e->hdr_len = 0;
	if (mac != 0xffff && nh != 0xffff && nh >= mac + 14 && nh - mac <= 64) {
		e->hdr_kind = NW_HDR_ETH;
		start = head + mac;
	} else if (nh != 0xffff) {
		e->hdr_kind = NW_HDR_L3;
		start = head + nh;
	} else if (mac != 0xffff) {
		e->hdr_kind = NW_HDR_ETH;
		start = head + mac;
	} else {
		return;
	}
	if (bpf_probe_read_kernel(e->hdr, NW_HDR_MAX, start) == 0) {
		e->hdr_len = NW_HDR_MAX;
	} else if (bpf_probe_read_kernel(e->hdr, 64, start) == 0) {
		e->hdr_len = 64;
	} else {
		e->hdr_kind = NW_HDR_NONE;
	}
}

/* Parse just enough of e->hdr to evaluate the flow filters. Returns true
 * when the packet matches every configured flow filter. */
static __always_inline bool flow_matches(struct nw_drop_event *e)
{
	__u32 off = 0, l4off = 0;
	__u16 proto = e->protocol;
	__u8 l4 = 0;
	bool has_l4 = false, ports = false;
	__u32 saddr_off = 0, daddr_off = 0, alen = 0;

	if (e->hdr_kind == NW_HDR_NONE)
		return false;
	if (e->hdr_kind == NW_HDR_ETH) {
		proto = BE16(12);
		off = 14;
		if (proto == 0x8100 || proto == 0x88a8) {
			proto = BE16(off + 2);
			off += 4;
		}
		if (proto == 0x8100) {
			proto = BE16(off + 2);
			off += 4;
		}
	}
	if (cfg_ethertype && proto != cfg_ethertype)
		return false;

	if (proto == 0x0800) {
		__u8 ihl = (H(off) & 0xf) * 4;
		__u16 frag = BE16(off + 6) & 0x1fff;
		l4 = H(off + 9);
		has_l4 = true;
		saddr_off = off + 12;
		daddr_off = off + 16;
		alen = 4;
		l4off = off + ihl;
		ports = frag == 0;
	} else if (proto == 0x86dd) {
		__u8 nexthdr = H(off + 6);
		saddr_off = off + 8;
		daddr_off = off + 24;
		alen = 16;
		l4off = off + 40;
		/* Walk up to four extension headers (hop-by-hop for MLD, ...). */
#pragma unroll
		for (int i = 0; i < 4; i++) {
			if (nexthdr == 0 || nexthdr == 43 || nexthdr == 60) {
				__u8 n = H(l4off);
				l4off += ((__u32)H(l4off + 1) + 1) * 8;
				nexthdr = n;
			} else if (nexthdr == 44) {
				__u8 n = H(l4off);
				ports = (BE16(l4off + 2) & 0xfff8) == 0;
				l4off += 8;
				nexthdr = n;
				if (!ports)
					break;
			}
		}
		if (nexthdr != 0 && nexthdr != 43 && nexthdr != 60 && nexthdr != 44) {
			l4 = nexthdr;
			has_l4 = true;
			ports = true;
		}
	}

	if (cfg_l4proto >= 0 && (!has_l4 || l4 != (__u8)cfg_l4proto))
		return false;

	if (cfg_host_family) {
		__u32 want = cfg_host_family == 4 ? 4 : 16;
		bool s = alen == want, d = alen == want;
		if (alen != want)
			return false;
#pragma unroll
		for (int i = 0; i < 16; i++) {
			if (i < want) {
				if (H(saddr_off + i) != cfg_host[i])
					s = false;
				if (H(daddr_off + i) != cfg_host[i])
					d = false;
			}
		}
		if (!s && !d)
			return false;
	}

	if (cfg_port >= 0) {
		if (!has_l4 || !ports || !(l4 == 6 || l4 == 17 || l4 == 132 || l4 == 136))
			return false;
		if (l4off + 4 > e->hdr_len)
			return false;
		if (BE16(l4off) != (__u16)cfg_port && BE16(l4off + 2) != (__u16)cfg_port)
			return false;
	}
	return true;
}

static __always_inline bool need_flow_filter(void)
{
	return cfg_ethertype || cfg_l4proto >= 0 || cfg_host_family || cfg_port >= 0;
}

static __always_inline int handle_drop(struct sk_buff *skb, __u64 location, __u32 reason,
				       struct sock *rx_sk, __u8 ctx_flags, bool btf)
{
	struct net_device *dev;
	struct nw_drop_event *e;
	__u32 zero = 0, netns, ifindex = 0, mark;
	__u8 netns_src = NW_NS_NONE;

	/* Not a drop: consumed or not-dropped-yet. Kernels without
	 * SKB_CONSUMED (6.1) get ~0 here: their kfree_skb only sees drops. */
	if (cfg_has_reason && cfg_consumed != (__u32)~0 && reason <= cfg_consumed)
		return 0;

	if (cfg_reason_include || cfg_reason_exclude) {
		__u8 *r = bpf_map_lookup_elem(&reasons, &reason);
		if (cfg_reason_include && (!r || *r != 1))
			return 0;
		if (cfg_reason_exclude && r && *r == 2)
			return 0;
	}

	/* Our own work: the drop happened in one of netwhy's threads and the
	 * skb never came in from a device (skb_iif 0: built by a syscall,
	 * like a route lookup's or a socket's). A packet received from a
	 * device in a softirq that merely ran on our thread is not ours; the
	 * classic tracepoint's irq flags say so too. */
	if (cfg_self_tgid && (bpf_get_current_pid_tgid() >> 32) == cfg_self_tgid &&
	    RD(btf, skb, skb_iif) == 0 &&
	    (!(ctx_flags & NW_CTX_KNOWN) || (ctx_flags & NW_CTX_TASK))) {
		count(NW_CNT_SELF);
		return 0;
	}

	dev = RD(btf, skb, dev);
	netns = drop_netns(skb, dev, rx_sk, btf, &netns_src);
	if (cfg_netns_filter && !bpf_map_lookup_elem(&netns_set, &netns))
		return 0;
	if (dev)
		ifindex = RD(btf, dev, ifindex);
	if (cfg_ifindex_filter && ifindex != cfg_ifindex)
		return 0;

	/* The scratch event is needed only to stream events or to look at
	 * names and headers; the plain aggregate path never touches it. */
	e = 0;
	if (cfg_events || cfg_ifname_filter || need_flow_filter()) {
		e = bpf_map_lookup_elem(&scratch, &zero);
		if (!e)
			return 0;
	}
	bool have_name = false;
	if (cfg_ifname_filter || cfg_events) {
		read_ifname(dev, e->ifname);
		have_name = true;
	}
	if (cfg_ifname_filter) {
#pragma unroll
		for (int i = 0; i < NW_IFNAMSIZ; i++) {
			if (e->ifname[i] != cfg_ifname[i])
				return 0;
			if (!cfg_ifname[i])
				break;
		}
	}

	mark = RD(btf, skb, mark);
	if (cfg_mark_filter && (mark & cfg_mark_mask) != cfg_mark)
		return 0;

	if (e && (cfg_events || need_flow_filter())) {
		e->protocol = bpf_ntohs(RD(btf, skb, protocol));
		grab_headers(skb, e);
		if (need_flow_filter() && !flow_matches(e))
			return 0;
	}

	/* Known-harmless drops: counted, not reported (user space lists the
	 * rules and shows the hidden count; --all empties the list). */
#pragma unroll
	for (int i = 0; i < NW_MAX_NOISE; i++) {
		if (i >= cfg_noise_count)
			break;
		if ((cfg_noise_reason[i] == 0xffffffff || cfg_noise_reason[i] == reason) &&
		    location >= cfg_noise_start[i] && location < cfg_noise_end[i]) {
			count(NW_CNT_HIDDEN);
			return 0;
		}
	}

	count(NW_CNT_SEEN);
	__u32 len = RD(btf, skb, len);

	bool sample = false;
	if (cfg_aggregate) {
		struct nw_agg_key key = {
			.location = location, .reason = reason, .netns = netns, .ifindex = ifindex,
		};
		struct nw_agg_val *v = bpf_map_lookup_elem(&agg, &key);
		if (v) {
			v->count += 1;
			v->bytes += len;
		} else {
			struct nw_agg_val init = { .count = 1, .bytes = len, .netns_src = netns_src };
			if (have_name && e)
				__builtin_memcpy(init.ifname, e->ifname, NW_IFNAMSIZ);
			else
				read_ifname(dev, init.ifname);
			int err = bpf_map_update_elem(&agg, &key, &init, BPF_NOEXIST);
			sample = cfg_sample_new && err == 0;
			if (err != 0) {
				/* Raced with another CPU creating it, or the map is full. */
				v = bpf_map_lookup_elem(&agg, &key);
				if (v) {
					v->count += 1;
					v->bytes += len;
				} else {
					count(NW_CNT_AGG_FULL);
				}
			}
		}
	}

	if (sample && !cfg_events) {
		/* First drop of a new group: fill what the events path reads. */
		if (!e)
			e = bpf_map_lookup_elem(&scratch, &zero);
		if (!e)
			return 0;
		if (!have_name)
			read_ifname(dev, e->ifname);
		if (!need_flow_filter()) {
			e->protocol = bpf_ntohs(RD(btf, skb, protocol));
			grab_headers(skb, e);
		}
	}
	if ((cfg_events || sample) && e) {
		e->time_ns = bpf_ktime_get_ns();
		e->skbaddr = (__u64)skb;
		e->location = location;
		e->reason = reason;
		e->netns = netns;
		e->netns_src = netns_src;
		e->ifindex = ifindex;
		e->mark = mark;
		e->len = len;
		e->pid = bpf_get_current_pid_tgid() >> 32;
		e->vlan_proto = bpf_ntohs(RD(btf, skb, vlan_proto));
		e->vlan_tci = RD(btf, skb, vlan_tci);
		e->ctx_flags = ctx_flags;
		bpf_get_current_comm(e->comm, sizeof(e->comm));
		__u64 flags = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= cfg_wakeup_bytes
				      ? BPF_RB_FORCE_WAKEUP
				      : BPF_RB_NO_WAKEUP;
		if (bpf_ringbuf_output(&events, e, sizeof(*e), flags) != 0)
			count(NW_CNT_LOST);
	}
	return 0;
}

SEC("tp_btf/kfree_skb")
int nw_drop_btf(unsigned long long *ctx)
{
	struct sk_buff *skb = (struct sk_buff *)ctx[0];
	__u64 location = ctx[1];
	__u32 reason = 0;
	struct sock *rx_sk = 0;
	if (cfg_has_reason)
		reason = (__u32)ctx[2];
	if (cfg_has_rx_sk)
		rx_sk = (struct sock *)ctx[3];
	return handle_drop(skb, location, reason, rx_sk, 0, true);
}

SEC("tracepoint/skb/kfree_skb")
int nw_drop_tp(struct trace_event_raw_kfree_skb *ctx)
{
	struct sk_buff *skb = (struct sk_buff *)BPF_CORE_READ(ctx, skbaddr);
	__u64 location = (__u64)BPF_CORE_READ(ctx, location);
	__u32 reason = 0;
	if (cfg_has_reason && bpf_core_field_exists(ctx->reason))
		reason = BPF_CORE_READ(ctx, reason);
	struct sock *rx_sk = 0;
	if (bpf_core_field_exists(ctx->rx_sk))
		rx_sk = (struct sock *)BPF_CORE_READ(ctx, rx_sk);
	__u8 tf = BPF_CORE_READ(ctx, ent.flags);
	__u8 cf = NW_CTX_KNOWN;
	if (!(tf & (TRACE_FLAG_HARDIRQ | TRACE_FLAG_SOFTIRQ | TRACE_FLAG_NMI)))
		cf |= NW_CTX_TASK;
	return handle_drop(skb, location, reason, rx_sk, cf, false);
}

/* Benchmark baseline only (examples/emptyprobe): the same hook doing no
 * work, to separate the kernel's cost of calling a BPF program from ours. */
SEC("tp_btf/kfree_skb")
int nw_drop_empty(unsigned long long *ctx)
{
	return 0;
}
