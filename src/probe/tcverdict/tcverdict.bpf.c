// SPDX-License-Identifier: GPL-2.0
/*
 * The TC verdict probe: fexit on a TC BPF program (one load per target,
 * attach_prog_fd + the target's BTF function name), so a tracked packet's
 * timeline says which program ran on it and what it returned. The kernel
 * only reports TC_INGRESS / TC_EGRESS when such a program drops.
 *
 * Like the skb function probe, it writes steps into the path probe's
 * `events` ring for skbs in its `tracked` map (user space hands both fds
 * over before load). The verdict picks the step's hook id:
 * cfg_hook + verdict + 1 (TC_ACT_UNSPEC -1 .. TC_ACT_TRAP 8), or
 * cfg_hook + 15 for anything else; user space names each id.
 */
#include "../include/vmlinux_min.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "../include/event.h"
#include "../include/skb.h"

char LICENSE[] SEC("license") = "GPL";

const volatile __u32 cfg_hook = 0;
const volatile __u64 cfg_track_ns = 2000000000ULL;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1);
	__type(key, __u64);
	__type(value, struct nw_track);
} tracked SEC(".maps");

/* Whether the IPv4 header at off in head carries id ipid. */
static __always_inline bool ipid_at(unsigned char *head, __u16 off, __u32 ipid)
{
	__u8 h[6];

	if (off == 0xffff || bpf_probe_read_kernel(h, sizeof(h), head + off))
		return false;
	return (h[0] >> 4) == 4 && (((__u32)h[4] << 8) | h[5]) == ipid;
}

/* The target's context: the kernel hands a TC program the sk_buff itself.
 * The verdict comes from bpf_get_func_ret: Debian's 6.12 builds the
 * trampoline of a BPF program target with 5 arguments (its arg count
 * says so), so ctx[1] is not the return value there. */
SEC("fexit")
int nw_tc_fexit(__u64 *ctx)
{
	struct sk_buff *skb = (struct sk_buff *)ctx[0];
	__u64 rv = 0;
	int ret;
	__u64 key = (__u64)skb;
	struct nw_track *t = bpf_map_lookup_elem(&tracked, &key);
	struct nw_path_event *e;
	struct net_device *dev;
	unsigned char *head;
	__u16 nh;
	__u32 tail, n, slot;
	__u64 now = bpf_ktime_get_ns();

	if (!t || now - t->start_ns > cfg_track_ns)
		return 0;
	head = BPF_CORE_READ(skb, head);
	nh = BPF_CORE_READ(skb, network_header);
	/* The path probe's reuse check (see skbfunc.bpf.c). */
	if (t->ipid != 0xffffffff && head && !ipid_at(head, nh, t->ipid) &&
	    !ipid_at(head, BPF_CORE_READ(skb, inner_network_header), t->ipid))
		return 0;
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e)
		return 0;
	bpf_get_func_ret(ctx, &rv);
	ret = (int)rv;
	slot = (ret >= -1 && ret <= 8) ? (__u32)(ret + 1) : 15;
	dev = BPF_CORE_READ(skb, dev);
	tail = BPF_CORE_READ(skb, tail);
	e->time_ns = now;
	e->skbaddr = key;
	e->packet = t->packet;
	e->location = 0;
	e->sock_ino = 0;
	e->reason = 0;
	e->netns = skb_netns(skb, dev, false);
	e->ifindex = dev ? BPF_CORE_READ(dev, ifindex) : 0;
	e->mark = BPF_CORE_READ(skb, mark);
	e->len = BPF_CORE_READ(skb, len);
	e->pid = bpf_get_current_pid_tgid() >> 32;
	e->aux = (__u32)ret;
	e->hook = (__u16)(cfg_hook + slot);
	e->protocol = bpf_ntohs(BPF_CORE_READ(skb, protocol));
	e->hdr_len = 0;
	e->flags = 0;
	e->_pad0 = 0;
	e->_pad1 = 0;
	read_ifname(dev, e->ifname);
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	if (head && nh != 0xffff && tail > nh) {
		n = tail - nh;
		if (bpf_probe_read_kernel(e->hdr, NW_HDR_MAX, head + nh) == 0)
			e->hdr_len = n < NW_HDR_MAX ? n : NW_HDR_MAX;
	}
	bpf_ringbuf_submit(e, BPF_RB_NO_WAKEUP);
	return 0;
}
