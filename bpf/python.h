/* CPython stacks: the per-process record user space hands the BPF walker (python.bpf.c), and how a
 * Python frame is written into a stack. Shared by the BPF units and user space. */
#ifndef ANORAK_PYTHON_H
#define ANORAK_PYTHON_H

/*
 * A Python frame in a stack, as BPF writes it: the top nibble PYTHON_FRAME_RAW (no user or kernel
 * address has it), the code object's address / 8 in bits 16-59 (user addresses are below 2^47) and the
 * instruction's offset in code units in bits 0-15 (saturated). User space resolves it to
 * PYTHON_FRAME_RESOLVED: the function's id in bits 32-55 and the line in bits 0-31.
 */
#define PYTHON_FRAME_TAG_SHIFT 60
#define PYTHON_FRAME_RAW 0xaULL
#define PYTHON_FRAME_RESOLVED 0xbULL
#define PYTHON_LASTI_MAX 0xffffULL
#define PYTHON_FRAME_ENCODE(code, lasti)                                                           \
	((PYTHON_FRAME_RAW << PYTHON_FRAME_TAG_SHIFT) | ((((__u64)(code)) >> 3) << 16) |           \
	 ((lasti) > PYTHON_LASTI_MAX ? PYTHON_LASTI_MAX : (lasti)))

/* Python frames (and skipped entry frames) one stack walks at most: the walk is a bpf_loop of
 * PYTHON_WALK_STEPS steps, each placing one frame; the stack holds PROFILER_MAX_STACK_DEPTH frames. */
#define PYTHON_WALK_STEPS 256

/* How frames chain and where an activation of _PyEval_EvalFrameDefault starts. */
enum python_frames_kind {
	PYTHON_FRAMES_310 = 1,   /* PyFrameObject: one frame per activation, f_lasti an int */
	PYTHON_FRAMES_ENTRY = 2, /* 3.11: _PyInterpreterFrame, the activation's first frame has is_entry */
	PYTHON_FRAMES_OWNER = 3, /* 3.12+: an activation starts above a frame owned by the C stack */
};

struct python_proc {
	__u64 eval_start, eval_end; /* _PyEval_EvalFrameDefault in the process */
	/* The thread's state is pthread_getspecific(autoTSSkey): set for the thread's life, where 3.13's
	 * _Py_tss_tstate is cleared whenever the thread lets the GIL go (a wait, C code without it). */
	__u64 tss_addr;             /* _PyRuntime.autoTSSkey, a Py_tss_t */
	__u32 pthread_specific;     /* glibc: offset of specific_1stblock[0].data in struct pthread */
	__u8 frames_kind;           /* enum python_frames_kind */
	__u8 owner_cstack;          /* PYTHON_FRAMES_OWNER: the C-stack owner's value */
	__u16 owner_size;           /* bytes of the owner or is_entry field (1) */
	__u16 tstate_frame;         /* tstate -> frame (3.10, 3.13+) or -> cframe (3.11, 3.12) */
	__u16 cframe_frame;         /* cframe -> current frame; 0xffff: no cframe */
	__u16 frame_code, frame_previous, frame_instr, frame_owner; /* owner: or is_entry (3.11) */
	__u16 code_adaptive;        /* code -> first instruction (3.11+) */
	__u16 pad;
};

#define PYTHON_NO_CFRAME 0xffff

/* Per-CPU counters of the walker, indexed by enum python_counter. */
enum python_counter {
	PYTHON_STACKS,            /* samples of a known Python process */
	PYTHON_STACKS_NO_THREAD,  /* ... whose thread has no thread state (not a Python thread, yet) */
	PYTHON_STACKS_READ_FAULT, /* ... whose thread state or frames could not be read */
	PYTHON_STACKS_TRUNCATED,  /* ... cut at the depth or walk bound */
	PYTHON_FRAMES,            /* Python frames placed in stacks */
	PYTHON_COUNTERS,
};

struct python_counter_values {
	__u64 n[PYTHON_COUNTERS];
};

#endif
