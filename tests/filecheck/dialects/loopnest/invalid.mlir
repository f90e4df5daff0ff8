// RUN: einsum-opt %s --split-input-file --verify-diagnostics

einsum.cascade @c(%X: !einsum.tensor<[M, P], f32>) -> !einsum.tensor<[P], f32> ranks(M = 8, P = 16) {
  %G = loopnest.nest on pe1d loops [p = 16, m = 8] levels [DRAM] G[p] = %X[m, p] :: max(m) : !einsum.tensor<[P], f32> // expected-error {{nest G: 1 storage levels for 1 accesses}}
  einsum.return %G : !einsum.tensor<[P], f32>
}

// -----

einsum.cascade @c(%X: !einsum.tensor<[M, P], f32>) -> !einsum.tensor<[P], f32> ranks(M = 8, P = 16) {
  // expected-error @+1 {{nest G: index variable m has no loop}}
  %G = loopnest.nest on pe1d loops [p = 16] levels [DRAM, GLB] G[p] = %X[m, p] :: max(m) : !einsum.tensor<[P], f32>
  einsum.return %G : !einsum.tensor<[P], f32>
}

// -----

einsum.cascade @c(%X: !einsum.tensor<[M, P], f32>) -> !einsum.tensor<[P], f32> ranks(M = 8, P = 16) {
  // expected-error @+1 {{nest G: loop q is used by no index}}
  %G = loopnest.nest on pe1d loops [p = 16, m = 8, q = 2] levels [DRAM, GLB] G[p] = %X[m, p] :: max(m) : !einsum.tensor<[P], f32>
  einsum.return %G : !einsum.tensor<[P], f32>
}

// -----

einsum.cascade @c(%X: !einsum.tensor<[M, P], f32>) -> !einsum.tensor<[M, P], f32> ranks(M = 8, P = 16) {
  // expected-error @+1 {{nest R: the iterative loop m cannot be spatial}}
  %R = loopnest.nest on pe1d loops [p = 16, m = 8 space 0] levels [GLB, DRAM, GLB] R[m+1, p] = R[m, p] + %X[m, p] init(0.0) : !einsum.tensor<[M, P], f32>
  einsum.return %R : !einsum.tensor<[M, P], f32>
}

// -----

einsum.cascade @c(%X: !einsum.tensor<[M, P], f32>) -> !einsum.tensor<[P], f32> ranks(M = 8, P = 16) {
  // expected-error @+1 {{loop m must have a positive trip count, got 0}}
  %G = loopnest.nest on pe1d loops [p = 16, m = 0] levels [DRAM, GLB] G[p] = %X[m, p] :: max(m) : !einsum.tensor<[P], f32>
  einsum.return %G : !einsum.tensor<[P], f32>
}
