/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What the probes that add steps to the path probe's timelines share (the
 * skb function probe, the TC verdict probe): the path probe's `events` ring
 * buffer and `tracked` map, whose fds user space hands over before load
 * (the sizes here do not matter), the lookup of a tracked skb, and the
 * filling of a step. The including file declares cfg_track_ns first and
 * includes event.h and skb.h.
 */
#ifndef NW_TRACK_H
#define NW_TRACK_H

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

/* Fills a step of packet `packet` at skb (every read a probe read: the
 * skb may be a plain number here, as in kprobes). */
static __always_inline void fill_step(struct nw_path_event *e, struct sk_buff *skb, __u64 packet,
				      __u32 hook, __u64 now)
{
	struct net_device *dev = BPF_CORE_READ(skb, dev);
	unsigned char *head = BPF_CORE_READ(skb, head);
	__u16 nh = BPF_CORE_READ(skb, network_header);
	__u32 tail = BPF_CORE_READ(skb, tail), n;

	e->time_ns = now;
	e->skbaddr = (__u64)skb;
	e->packet = packet;
	e->location = 0;
	e->sock_ino = 0;
	e->clone_of = 0;
	e->clone = 0;
	e->reason = 0;
	e->netns = skb_netns(skb, dev, false);
	e->ifindex = dev ? BPF_CORE_READ(dev, ifindex) : 0;
	e->mark = BPF_CORE_READ(skb, mark);
	e->len = BPF_CORE_READ(skb, len);
	e->pid = bpf_get_current_pid_tgid() >> 32;
	e->aux = 0;
	e->hook = (__u16)hook;
	e->protocol = bpf_ntohs(BPF_CORE_READ(skb, protocol));
	e->hdr_len = 0;
	e->flags = 0;
	e->_pad0 = 0;
	e->_pad1 = 0;
	read_ifname(dev, e->ifname);
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	/* Headers from the network header, when it is set and inside data. */
	if (head && nh != 0xffff && tail > nh) {
		n = tail - nh;
		if (bpf_probe_read_kernel(e->hdr, NW_HDR_MAX, head + nh) == 0)
			e->hdr_len = n < NW_HDR_MAX ? n : NW_HDR_MAX;
	}
}

/* The tracked entry of skb, if it is the packet the path probe tracks:
 * young enough, and (the path probe's reuse check, without its deletion,
 * left to the tracepoints) an IPv4 packet still carrying its id, which NAT
 * keeps, or inside a tunnel the inner header keeping it. */
static __always_inline struct nw_track *tracked_at(struct sk_buff *skb, __u64 now)
{
	__u64 key = (__u64)skb;
	struct nw_track *t = bpf_map_lookup_elem(&tracked, &key);
	unsigned char *head;
	__u16 nh;

	if (!t || now - t->start_ns > cfg_track_ns)
		return 0;
	head = BPF_CORE_READ(skb, head);
	nh = BPF_CORE_READ(skb, network_header);
	if (t->ipid != 0xffffffff && head && !ipid_at(head, nh, t->ipid) &&
	    !ipid_at(head, BPF_CORE_READ(skb, inner_network_header), t->ipid))
		return 0;
	return t;
}

#endif
