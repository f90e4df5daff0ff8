einsum.cascade @odd(%X: !einsum.tensor<[P], f32>) -> !einsum.tensor<[P], f32> ranks(P = 8) {
  %Y = loopnest.nest on pe1d loops [p = 4 space 0] levels [DRAM, DRAM] Y[2*p] = %X[p] : !einsum.tensor<[P], f32>
  einsum.return %Y : !einsum.tensor<[P], f32>
}
