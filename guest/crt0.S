// dmalab guest start-up: enables FP/SIMD at EL1 (compilers use it for copies), keeps the
// entry registers (RAM base, RAM size, DMA engine base, engine device) for main, runs on the
// stack dmalab set up below the program (sp on entry), and exits with main's return value.
// The loader has already zeroed .bss (p_memsz past p_filesz).
	.section .text.start, "ax"
	.global _start
	.type _start, %function
_start:
	mov	x9, #(3 << 20)		// CPACR_EL1.FPEN = 0b11: no trap on FP/SIMD
	msr	cpacr_el1, x9
	isb
	mov	x29, #0
	mov	x30, #0
	bl	main			// x0..x3 unchanged since entry
	mov	x8, #93			// exit(main's return value)
	svc	#0
1:	b	1b
	.size _start, . - _start
