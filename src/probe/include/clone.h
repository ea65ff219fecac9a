/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Copies of tracked packets, for netwhy trace with a function backend:
 * part of skbfunc.bpf.c (included at its end: it uses that file's maps,
 * fill_step and tracked_at), kept apart to keep both readable.
 *
 * skb_clone, skb_copy, skb_copy_expand and __pskb_copy_fclone take the
 * source skb first and return the copy. Hooked at return, a tracked source
 * makes the copy a tracked packet of its own, with an id from the path
 * probe's counter (so no id is given twice) and the source's id as
 * clone_of; both timelines get a step at the cloning function.
 */
#ifndef NETWHY_CLONE_H
#define NETWHY_CLONE_H

/* kprobes: the tracked skb a cloning function was entered with, per
 * thread, until its return probe reads the copy. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, __u64);
} clone_src SEC(".maps");

static __always_inline void count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &idx);
	if (v)
		*v += 1;
}

static __always_inline int on_clone(__u32 fn, struct sk_buff *src, struct sk_buff *dst)
{
	__u64 now = bpf_ktime_get_ns(), dkey = (__u64)dst, id, parent;
	__u32 zero = 0, hook = cfg_clone_hook_base + fn;
	struct nw_path_event *e;
	struct nw_track *t;
	__u64 *next;

	if (!src || !dst || src == dst)
		return 0;
	t = tracked_at(src, now);
	next = bpf_map_lookup_elem(&next_id, &zero);
	if (!t || !next)
		return 0;
	parent = t->packet;
	id = __sync_fetch_and_add(next, 1) + 1;
	struct nw_track nt = { .packet = id, .start_ns = now, .clone_of = parent, .ipid = t->ipid };
	if (bpf_map_update_elem(&tracked, &dkey, &nt, BPF_ANY) != 0) {
		count(NW_PCNT_TRACK_FULL);
		return 0;
	}
	count(NW_PCNT_CLONES);
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (e) {
		fill_step(e, src, parent, hook, now);
		e->clone_of = t->clone_of;
		e->clone = id;
		bpf_ringbuf_submit(e, BPF_RB_NO_WAKEUP);
	} else {
		count(NW_PCNT_LOST);
	}
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count(NW_PCNT_LOST);
		return 0;
	}
	fill_step(e, dst, id, hook, now);
	e->clone_of = parent;
	e->flags = NW_STEP_FIRST;
	bpf_ringbuf_submit(e, BPF_RB_NO_WAKEUP);
	return 0;
}

/* Per-thread key; idle tasks (pid 0, softirqs on an idle CPU) share one
 * pid_tgid across CPUs, so theirs is per CPU. A softirq cloning inside a
 * task's clone on the same CPU overwrites the task's entry: that copy is
 * then not followed. */
static __always_inline __u64 thread_key(void)
{
	__u64 id = bpf_get_current_pid_tgid();

	return (__u32)id ? id : (1ULL << 63) | bpf_get_smp_processor_id();
}

static __always_inline int clone_entry(struct pt_regs *ctx)
{
	__u64 src = *(volatile unsigned long *)&ctx->di, key;

	if (!src || !bpf_map_lookup_elem(&tracked, &src))
		return 0;
	key = thread_key();
	bpf_map_update_elem(&clone_src, &key, &src, BPF_ANY);
	return 0;
}

static __always_inline int clone_return(struct pt_regs *ctx)
{
	__u64 key = thread_key(), *p = bpf_map_lookup_elem(&clone_src, &key), src;

	if (!p)
		return 0;
	src = *p;
	bpf_map_delete_elem(&clone_src, &key);
	return on_clone((__u32)bpf_get_attach_cookie(ctx), (struct sk_buff *)src,
			(struct sk_buff *)*(volatile unsigned long *)&ctx->ax);
}

SEC("kprobe.multi")
int nw_clone_kmulti(struct pt_regs *ctx)
{
	return clone_entry(ctx);
}

SEC("kretprobe.multi")
int nw_clone_kmulti_ret(struct pt_regs *ctx)
{
	return clone_return(ctx);
}

SEC("kprobe")
int nw_clone_kprobe(struct pt_regs *ctx)
{
	return clone_entry(ctx);
}

SEC("kretprobe")
int nw_clone_kretprobe(struct pt_regs *ctx)
{
	return clone_return(ctx);
}

/* fexit sees the arguments and the return value at once. */
SEC("fexit")
int nw_clone_fexit(__u64 *ctx)
{
	__u64 ret = 0;

	if (bpf_get_func_ret(ctx, &ret))
		return 0;
	return on_clone((__u32)bpf_get_attach_cookie(ctx), (struct sk_buff *)ctx[0],
			(struct sk_buff *)ret);
}

#endif
