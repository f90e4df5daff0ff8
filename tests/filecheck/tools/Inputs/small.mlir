einsum.cascade @scale(%X: !einsum.tensor<[M, P], f32>) -> !einsum.tensor<[P], f32> ranks(M = 8, P = 4) {
  %S = einsum.einsum S[p] = %X[m, p] * 2.0 : !einsum.tensor<[P], f32>
  einsum.return %S : !einsum.tensor<[P], f32>
}
