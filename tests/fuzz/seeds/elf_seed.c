/* A small ELF file with what the ELF reader looks for: functions in .symtab and .dynsym, a TLS variable
 * named as in the OTel thread context ABI (PT_TLS, a TLSDESC relocation), a build id; the build adds a
 * stripped copy with a .gnu_debuglink and the debug file. Built without libc to stay small. */
__thread void *otel_thread_ctx_v1;

__attribute__((noinline)) static int leaf(int x)
{
	return x * 3 + 1;
}

__attribute__((noinline)) int middle(int x)
{
	return leaf(x) + (otel_thread_ctx_v1 != 0);
}

int seed_entry(int x)
{
	return middle(x) - 1;
}
