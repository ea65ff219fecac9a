/* SPDX-License-Identifier: GPL-2.0 */
/*
 * netwhy run, kernel side: which packets belong to one command. A packet
 * whose socket was created in the command's cgroup is its own (and its
 * local endpoint is remembered at egress); a packet addressed to a
 * remembered endpoint is a reply to it, whatever its source, so a reply NAT
 * got wrong is traced too. Included by path.bpf.c after cbpf.h.
 */
#ifndef NETWHY_ENDPOINT_H
#define NETWHY_ENDPOINT_H

/* netwhy run: the cgroup (v2 id) whose sockets' packets are traced, with
 * the packets coming back to their local addresses and ports. 0 = off. */
const volatile __u64 cfg_cgroup = 0;

/* A local endpoint of a traced process: replies to it are traced too. */
struct nw_endpoint {
	__u32 netns;
	__u8 family; /* 4 or 6 */
	__u8 proto;  /* 6 or 17 */
	__u16 port;  /* network order, as in the header */
	__u8 addr[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct nw_endpoint);
	__type(value, __u8);
} endpoints SEC(".maps");

/* The source (src = true) or destination endpoint of a TCP/UDP packet
 * (first fragments, IPv6 without extension headers). */
static __always_inline bool endpoint(struct nw_cbpf_state *p, __u32 caplen, __u32 netns, bool src,
				     struct nw_endpoint *ep)
{
	__u8 *b = p->b;
	__u32 l4;

	__builtin_memset(ep, 0, sizeof(*ep));
	ep->netns = netns;
	if (caplen >= 20 && (b[0] >> 4) == 4) {
		if ((((__u32)b[6] << 8) | b[7]) & 0x1fff)
			return false;
		ep->family = 4;
		ep->proto = b[9];
		l4 = (b[0] & 0xf) * 4;
		__builtin_memcpy(ep->addr, src ? &b[12] : &b[16], 4);
	} else if (caplen >= 40 && (b[0] >> 4) == 6) {
		ep->family = 6;
		ep->proto = b[6];
		l4 = 40;
		if (src)
			__builtin_memcpy(ep->addr, &b[8], 16);
		else
			__builtin_memcpy(ep->addr, &b[24], 16);
	} else {
		return false;
	}
	if ((ep->proto != 6 && ep->proto != 17) || l4 + 4 > caplen)
		return false;
	l4 &= 63;
	__builtin_memcpy(&ep->port, &b[src ? l4 : l4 + 2], 2);
	return true;
}

static __always_inline bool egress_hook(__u16 hook)
{
	return hook == NW_HOOK_NET_DEV_QUEUE || hook == NW_HOOK_QDISC_ENQUEUE ||
	       hook == NW_HOOK_NET_DEV_START_XMIT;
}

/* netwhy run: a packet of the traced cgroup's sockets (remembering its
 * local endpoint at egress), or one addressed to such an endpoint. */
static __always_inline bool cgroup_matches(struct sk_buff *skb, struct nw_cbpf_state *p,
					   __u32 caplen, __u32 netns, __u16 hook)
{
	struct nw_endpoint ep;
	struct sock *sk = skb->sk;
	bool mine = false;

	if (sk) {
		struct cgroup *cg = sk->sk_cgrp_data.cgroup;
		if (cg && cg->kn && cg->kn->id == cfg_cgroup)
			mine = true;
	}
	if (mine) {
		__u8 one = 1;
		if (egress_hook(hook) && endpoint(p, caplen, netns, true, &ep))
			bpf_map_update_elem(&endpoints, &ep, &one, BPF_ANY);
		return true;
	}
	return endpoint(p, caplen, netns, false, &ep) && bpf_map_lookup_elem(&endpoints, &ep);
}

#endif
