/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Wire format of the skb function probe (skbfunc.bpf.c): one counter slot
 * per traced function, indexed by the id user space put in the attach
 * cookie. The Rust side reads these through the skeleton's generated types.
 */
#ifndef NETWHY_SKBFUNC_H
#define NETWHY_SKBFUNC_H

/* Slots in the hits map: traced functions first, then the tracepoints. */
#define NW_SKBFUNC_MAX 16384

/* Tracepoint slots, after the last function id (cfg_tp_base + index). */
enum nw_skbfunc_tp {
	NW_TP_NETIF_RECEIVE_SKB = 0,
	NW_TP_NET_DEV_QUEUE = 1,
	NW_TP_NET_DEV_XMIT = 2,
	NW_TP_KFREE_SKB = 3,
	NW_TP_CONSUME_SKB = 4,
	NW_TP_COUNT = 5,
};

struct nw_hits {
	__u64 count;
	/* bpf_ktime_get_ns() of the first hit, 0 if none: orders the path. */
	__u64 first_ns;
};

#endif
