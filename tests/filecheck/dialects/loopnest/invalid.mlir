// RUN: einsum-opt %s --split-input-file --verify-diagnostics --parsing-diagnostics | filecheck %s

einsum.cascade @c(%X: !einsum.tensor<[M, P], f32>) -> !einsum.tensor<[P], f32> ranks(M = 8, P = 16) {
  %G = loopnest.nest on pe1d loops [p = 16, m = 8] levels [DRAM] G[p] = %X[m, p] :: max(m) : !einsum.tensor<[P], f32>
  einsum.return %G : !einsum.tensor<[P], f32>
}
// CHECK: nest G: 1 storage levels for 1 accesses and the output (one each)

// -----

einsum.cascade @c(%X: !einsum.tensor<[M, P], f32>) -> !einsum.tensor<[P], f32> ranks(M = 8, P = 16) {
  %G = loopnest.nest on pe1d loops [p = 16] levels [DRAM, GLB] G[p] = %X[m, p] :: max(m) : !einsum.tensor<[P], f32>
  einsum.return %G : !einsum.tensor<[P], f32>
}
// CHECK: nest G: index variable m has no loop

// -----

einsum.cascade @c(%X: !einsum.tensor<[M, P], f32>) -> !einsum.tensor<[P], f32> ranks(M = 8, P = 16) {
  %G = loopnest.nest on pe1d loops [p = 16, m = 8, q = 2] levels [DRAM, GLB] G[p] = %X[m, p] :: max(m) : !einsum.tensor<[P], f32>
  einsum.return %G : !einsum.tensor<[P], f32>
}
// CHECK: nest G: loop q is used by no index

// -----

einsum.cascade @c(%X: !einsum.tensor<[M, P], f32>) -> !einsum.tensor<[M, P], f32> ranks(M = 8, P = 16) {
  %R = loopnest.nest on pe1d loops [p = 16, m = 8 space 0] levels [GLB, DRAM, GLB] R[m+1, p] = R[m, p] + %X[m, p] init(0.0) : !einsum.tensor<[M, P], f32>
  einsum.return %R : !einsum.tensor<[M, P], f32>
}
// CHECK: nest R: the iterative loop m cannot be spatial

// -----

einsum.cascade @c(%X: !einsum.tensor<[M, P], f32>) -> !einsum.tensor<[P], f32> ranks(M = 8, P = 16) {
  %G = loopnest.nest on pe1d loops [p = 16, m = 0] levels [DRAM, GLB] G[p] = %X[m, p] :: max(m) : !einsum.tensor<[P], f32>
  einsum.return %G : !einsum.tensor<[P], f32>
}
// CHECK: loop m must have a positive trip count
