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

#include "../include/track.h"

/* The target's context: the kernel hands a TC program the sk_buff itself.
 * The verdict comes from bpf_get_func_ret: Debian's 6.12 builds the
 * trampoline of a BPF program target with 5 arguments (its arg count
 * says so), so ctx[1] is not the return value there. */
SEC("fexit")
int nw_tc_fexit(__u64 *ctx)
{
	struct sk_buff *skb = (struct sk_buff *)ctx[0];
	__u64 now = bpf_ktime_get_ns(), rv = 0;
	struct nw_track *t = tracked_at(skb, now);
	struct nw_path_event *e;
	__u32 slot;
	int ret;

	if (!t)
		return 0;
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e)
		return 0;
	bpf_get_func_ret(ctx, &rv);
	ret = (int)rv;
	slot = (ret >= -1 && ret <= 8) ? (__u32)(ret + 1) : 15;
	fill_step(e, skb, t->packet, cfg_hook + slot, now);
	e->clone_of = t->clone_of;
	e->aux = (__u32)ret;
	bpf_ringbuf_submit(e, BPF_RB_NO_WAKEUP);
	return 0;
}
