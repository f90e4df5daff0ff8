einsum.cascade @c(%X: !einsum.tensor<[M], f32>) -> !einsum.tensor<[M], f32> ranks(M = 4) {
  %S = einsum.bogus %X : !einsum.tensor<[M], f32>
  einsum.return %S : !einsum.tensor<[M], f32>
}
