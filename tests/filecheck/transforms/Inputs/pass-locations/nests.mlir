// Loop nests of a softmax: SN runs on a unit the architecture does not have; in SD a loop is
// spatial on axis 1 of the one-axis array pe1d.
einsum.cascade @softmax(%X: !einsum.tensor<[M, P], f32>) -> !einsum.tensor<[M, P], f32> ranks(M = 16, P = 8) {
  %GM = loopnest.nest on pe1d loops [p = 8 space 0, m = 16] levels [DRAM, GLB] GM[p] = %X[m, p] :: max(m) : !einsum.tensor<[P], f32>
  %SN = loopnest.nest on vector loops [m = 16, p = 8 space 0] levels [DRAM, GLB, GLB] SN[m, p] = exp(%X[m, p] - %GM[p]) : !einsum.tensor<[M, P], f32>
  %SD = loopnest.nest on pe1d loops [p = 8, m = 16 space 1] levels [GLB, GLB] SD[p] = %SN[m, p] : !einsum.tensor<[P], f32>
  %A = loopnest.nest on pe1d loops [m = 16, p = 8 space 0] levels [GLB, GLB, DRAM] A[m, p] = %SN[m, p] / %SD[p] : !einsum.tensor<[M, P], f32>
  einsum.return %A : !einsum.tensor<[M, P], f32>
}
