// RUN: EINSUM_ROUNDTRIP
// RUN: einsum-opt %s --split-input-file | einsum-opt --split-input-file | filecheck %s

einsum.cascade @c(%X: !einsum.tensor<[M, P], f32>) -> !einsum.tensor<[M, P], f32> ranks(M = 8, P = 16) {
  %G = loopnest.nest on pe1d loops [p1 = 4, m = 8, p0 = 4 space 0] levels [DRAM, GLB] G[4*p1+p0] = %X[m, 4*p1+p0] :: max(m) : !einsum.tensor<[P], f32>
  %R = loopnest.nest on pe1d loops [p1 = 4, m = 8, p0 = 4 space 0] levels [GLB, DRAM, GLB] R[m+1, 4*p1+p0] = max(R[m, 4*p1+p0], %X[m, 4*p1+p0]) init(-inf) : !einsum.tensor<[M, P], f32>
  %S = loopnest.nest on pe2d loops [m = 8 space 1, p = 16 space 0] levels [DRAM, GLB, GLB, DRAM] S[m, p] = exp(%X[m, p] - %R[M, p]) + %G[p] : !einsum.tensor<[M, P], f32>
  einsum.return %S : !einsum.tensor<[M, P], f32>
}

// CHECK:      %G = loopnest.nest on pe1d loops [p1 = 4, m = 8, p0 = 4 space 0] levels [DRAM, GLB] G[4*p1+p0] = %X[m, 4*p1+p0] :: max(m) : !einsum.tensor<[P], f32>
// CHECK-NEXT: %R = loopnest.nest on pe1d loops [p1 = 4, m = 8, p0 = 4 space 0] levels [GLB, DRAM, GLB] R[m+1, 4*p1+p0] = max(R[m, 4*p1+p0], %X[m, 4*p1+p0]) init(-inf) : !einsum.tensor<[M, P], f32>
// CHECK-NEXT: %S = loopnest.nest on pe2d loops [m = 8 space 1, p = 16 space 0] levels [DRAM, GLB, GLB, DRAM] S[m, p] = exp(%X[m, p] - %R[M, p]) + %G[p] : !einsum.tensor<[M, P], f32>
