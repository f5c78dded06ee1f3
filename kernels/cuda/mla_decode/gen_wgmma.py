"""Prints the wgmma wrapper functions of warpgroup.cuh (MmaSs64x64, MmaSs64x256, MmaRs64x256):
their operand lists (one register per accumulator element) are mechanical, so they are generated
rather than typed. Usage: python3 gen_wgmma.py, then paste the output over those functions."""

def regs(n, start=0):
    return ", ".join(f"%{i}" for i in range(start, start + n))

def outs(n):
    return ", ".join(f'"+f"(d[{i}])' for i in range(n))

def ss(n, trans_b):
    nacc = n // 2
    a, b, s = nacc, nacc + 1, nacc + 2
    return f'''// D[64 x {n}] (+)= A[64 x 16] B[16 x {n}]; A and B from shared memory (descriptors), B {"MN" if trans_b else "K"}-major.
__device__ __forceinline__ void MmaSs64x{n}(float (&d)[{nacc}], uint64_t desc_a, uint64_t desc_b,
                                          int accumulate) {{
  asm volatile(
      "{{\\n.reg .pred p;\\nsetp.ne.b32 p, %{s}, 0;\\n"
      "wgmma.mma_async.sync.aligned.m64n{n}k16.f32.bf16.bf16 {{{regs(nacc)}}}, %{a}, %{b}, p, 1, 1, 0, {1 if trans_b else 0};\\n}}\\n"
      : {outs(nacc)}
      : "l"(desc_a), "l"(desc_b), "r"(accumulate));
}}
'''

def rs(n, trans_b):
    nacc = n // 2
    a0 = nacc
    b, s = nacc + 4, nacc + 5
    return f'''// D[64 x {n}] (+)= A[64 x 16] B[16 x {n}]; A from registers (fragment layout above), B from
// shared memory, {"MN" if trans_b else "K"}-major.
__device__ __forceinline__ void MmaRs64x{n}(float (&d)[{nacc}], const uint32_t (&a)[4], uint64_t desc_b,
                                          int accumulate) {{
  asm volatile(
      "{{\\n.reg .pred p;\\nsetp.ne.b32 p, %{s}, 0;\\n"
      "wgmma.mma_async.sync.aligned.m64n{n}k16.f32.bf16.bf16 {{{regs(nacc)}}}, {{{regs(4, a0)}}}, %{b}, p, 1, 1, {1 if trans_b else 0};\\n}}\\n"
      : {outs(nacc)}
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(accumulate));
}}
'''

print(ss(64, False))
print(ss(256, True))
print(rs(256, True))
