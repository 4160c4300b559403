/*
 * Entry, firmware trampoline and exception vectors for a little-endian ppc64 pseries guest.
 *
 * Facts (../shared/docs/boot-facts.md): SLOF, VOF and FDT-direct boots all enter big-endian,
 * in 32-bit mode (MSR[SF]=0), in real mode; r3 = FDT (FDT-direct) or 0, r5 = OF client
 * interface entry (SLOF/VOF) or 0. The precompiled `core` uses VSX/VMX/FP, so MSR[FP|VEC|VSX]
 * must be on before any Rust code, and SF before 64-bit code relies on CR0.
 *
 * The endian switch: the word `tdi 0,0,0x48` reads as `b .+8` in big-endian and is a no-op in
 * little-endian. A big-endian CPU therefore runs the byte-swapped words after it (mfmsr;
 * xori LE; mtmsrd to clear EE/RI; get PC; rfid into little-endian at the label after them).
 */

/* Runs the endian switch if the CPU is big-endian; clobbers r10, r11 only then. */
.macro FIXUP_ENDIAN
    tdi   0, 0, 0x48          /* big-endian: b .+8 */
    b     191f                /* little-endian: skip the swapped words */
    .long 0xa600607d          /* mfmsr  r11 */
    .long 0x01006b69          /* xori   r11, r11, 1 (MSR[LE]) */
    .long 0x00004039          /* li     r10, 0 */
    .long 0x6401417d          /* mtmsrd r10, 1 (EE=RI=0) */
    .long 0x05009f42          /* bcl    20, 31, $+4 */
    .long 0xa602487d          /* mflr   r10 */
    .long 0x14004a39          /* addi   r10, r10, 20 */
    .long 0xa6035a7d          /* mtsrr0 r10 */
    .long 0xa6037b7d          /* mtsrr1 r11 */
    .long 0x2400004c          /* rfid */
191:
.endm

/* r11 = the kernel's MSR: SF | VEC | VSX | FP | ME | RI | LE. */
.macro LOAD_KERNEL_MSR
    li    %r11, 1
    sldi  %r11, %r11, 63
    oris  %r11, %r11, 0x0280  /* VEC (1<<25) | VSX (1<<23) */
    ori   %r11, %r11, 0x3003  /* FP (1<<13) | ME (1<<12) | RI (1<<1) | LE (1<<0) */
.endm

/* rfid to local label \target with MSR = r11 (clobbers r12). */
.macro RFID_TO target
    bcl   20, 31, 192f
192:
    mflr  %r12
    addi  %r12, %r12, (\target - 192b)
    mtsrr0 %r12
    mtsrr1 %r11
    rfid
.endm

.macro LOAD_ADDR reg, sym
    lis   \reg, \sym@ha
    addi  \reg, \reg, \sym@l
.endm

    .section .text.entry, "ax"
    .globl _start
_start:
    FIXUP_ENDIAN
    /* Little-endian now, maybe 32-bit. Preserve r3-r5 (firmware arguments). */
    LOAD_KERNEL_MSR
    RFID_TO 1f
1:
    /* 64-bit, LE, FP/VMX/VSX on, real mode. Everything lives below 4 GiB. */
    LOAD_ADDR %r2, .TOC.
    LOAD_ADDR %r1, __boot_stack_top

    /* Clear .bss (8-byte aligned by the linker script). */
    LOAD_ADDR %r6, __bss_start
    LOAD_ADDR %r7, __bss_end
    li    %r0, 0
2:  cmpld %r6, %r7
    bge   3f
    std   %r0, 0(%r6)
    addi  %r6, %r6, 8
    b     2b
3:
    li    %r0, 0
    stdu  %r0, -64(%r1)       /* null back-chain frame */
    bl    arch_boot_entry     /* (r3, r4, r5) as handed over by firmware; never returns */
    nop
4:  b     4b

/*
 * u64 ppc_firmware_call(u64 arg0, u64 arg1, u64 entry)
 *
 * Calls Open Firmware (r3 = client-interface argument array) or instantiated RTAS
 * (r3 = argument buffer, r4 = RTAS base) in big-endian real mode, as both require, and
 * returns to little-endian 64-bit mode with r2, r13-r31, CR and MSR restored.
 */
    .section .text.ppc_firmware_call, "ax"
    .globl ppc_firmware_call
ppc_firmware_call:
    mflr  %r0
    std   %r0, 16(%r1)
    mfcr  %r12
    stw   %r12, 8(%r1)
    stdu  %r1, -224(%r1)
    std   %r2, 32(%r1)
    std   %r13, 40(%r1)
    std   %r14, 48(%r1)
    std   %r15, 56(%r1)
    std   %r16, 64(%r1)
    std   %r17, 72(%r1)
    std   %r18, 80(%r1)
    std   %r19, 88(%r1)
    std   %r20, 96(%r1)
    std   %r21, 104(%r1)
    std   %r22, 112(%r1)
    std   %r23, 120(%r1)
    std   %r24, 128(%r1)
    std   %r25, 136(%r1)
    std   %r26, 144(%r1)
    std   %r27, 152(%r1)
    std   %r28, 160(%r1)
    std   %r29, 168(%r1)
    std   %r30, 176(%r1)
    std   %r31, 184(%r1)
    mfmsr %r11
    std   %r11, 192(%r1)
    /* Firmware MSR: ours with LE, EE, IR and DR cleared (OF and RTAS run in real mode). */
    li    %r12, 1
    ori   %r12, %r12, 0x8031
    andc  %r11, %r11, %r12
    mtsrr0 %r5
    mtsrr1 %r11
    bcl   20, 31, 5f
5:  mflr  %r12
    addi  %r12, %r12, (6f - 5b)
    mtlr  %r12
    rfid
6:  /* Back from firmware, big-endian. */
    FIXUP_ENDIAN
    ld    %r11, 192(%r1)
    RFID_TO 7f
7:  ld    %r2, 32(%r1)
    ld    %r13, 40(%r1)
    ld    %r14, 48(%r1)
    ld    %r15, 56(%r1)
    ld    %r16, 64(%r1)
    ld    %r17, 72(%r1)
    ld    %r18, 80(%r1)
    ld    %r19, 88(%r1)
    ld    %r20, 96(%r1)
    ld    %r21, 104(%r1)
    ld    %r22, 112(%r1)
    ld    %r23, 120(%r1)
    ld    %r24, 128(%r1)
    ld    %r25, 136(%r1)
    ld    %r26, 144(%r1)
    ld    %r27, 152(%r1)
    ld    %r28, 160(%r1)
    ld    %r29, 168(%r1)
    ld    %r30, 176(%r1)
    ld    %r31, 184(%r1)
    addi  %r1, %r1, 224
    ld    %r0, 16(%r1)
    mtlr  %r0
    lwz   %r12, 8(%r1)
    mtcrf 0xff, %r12
    blr

/*
 * Common exception entry. The vector stub left: r3 = vector offset, SPRG1 = old r3,
 * SPRG2 = old r4. Interrupts clear MSR[FP|VEC|VSX], so turn them back on before Rust.
 */
    .section .text.exception_entry, "ax"
    .globl ppc_exception_entry
ppc_exception_entry:
    mr    %r8, %r1
    LOAD_ADDR %r1, __exception_stack_top
    li    %r0, 0
    stdu  %r0, -64(%r1)
    LOAD_ADDR %r2, .TOC.
    mfmsr %r11
    oris  %r11, %r11, 0x0280
    ori   %r11, %r11, 0x2000
    mtmsrd %r11
    isync
    mfsrr0 %r4
    mfsrr1 %r5
    mfdar  %r6
    mfdsisr %r7
    bl    arch_exception_entry  /* (vector, srr0, srr1, dar, dsisr, r1); never returns */
    nop
8:  b     8b

/* One stub per vector: copied to physical address 0 + offset by the kernel. */
.macro VECTOR offset
    .org  \offset
    mtsprg1 %r3
    mtsprg2 %r4
    li    %r3, \offset
    LOAD_ADDR %r4, ppc_exception_entry
    mtctr %r4
    bctr
.endm

    .section .vectors, "ax"
    .globl ppc_vectors_template
ppc_vectors_template:
    VECTOR 0x100   /* system reset */
    VECTOR 0x200   /* machine check */
    VECTOR 0x300   /* data storage */
    VECTOR 0x380   /* data segment */
    VECTOR 0x400   /* instruction storage */
    VECTOR 0x480   /* instruction segment */
    /*
     * External interrupt: taken only inside `hcall::cede_for` (the kernel otherwise runs with
     * MSR[EE] off). Return to the interrupted code with MSR[EE] off (it was on, or the
     * interrupt would not have been taken), the interrupt left pending in the presentation
     * controller for the kernel to accept (`xics::accept`), and SPRG3 = 1 to say so.
     */
    .org  0x500
    mtsprg1 %r3
    li    %r3, 1
    mtsprg3 %r3
    mfsrr1 %r3
    xori  %r3, %r3, 0x8000   /* MSR[EE] */
    mtsrr1 %r3
    mfsprg1 %r3
    rfid
    VECTOR 0x600   /* alignment */
    VECTOR 0x700   /* program */
    VECTOR 0x800   /* floating point unavailable */
    /*
     * Decrementer: the kernel sets it only as the alarm that ends an H_CEDE (`hcall::cede_for`).
     * Push it far into the future (a positive value withdraws the exception: POWER's
     * decrementer interrupt is pending while the register is negative) and return to the
     * interrupted code with every register as it was (SPRG1 is scratch, as in VECTOR).
     */
    .org  0x900
    mtsprg1 %r3
    lis   %r3, 0x7fff
    ori   %r3, %r3, 0xffff
    mtspr 22, %r3   /* DEC */
    mfsprg1 %r3
    rfid
    VECTOR 0xa00   /* directed privileged doorbell */
    VECTOR 0xc00   /* system call */
    VECTOR 0xd00   /* trace */
    VECTOR 0xe00   /* hypervisor data storage (not for guests) */
    VECTOR 0xf00   /* performance monitor */
    VECTOR 0xf20   /* vector unavailable */
    VECTOR 0xf40   /* VSX unavailable */
    VECTOR 0xf60   /* facility unavailable */
    .org  0x1000
    .globl ppc_vectors_template_end
ppc_vectors_template_end:

    .section .bss.stacks, "aw", @nobits
    .balign 16
    .space 0x20000
    .globl __boot_stack_top
__boot_stack_top:
    .space 0x4000
    .globl __exception_stack_top
__exception_stack_top:
