// A cascade that uses a rank it does not declare.
einsum.cascade @c(%X: !einsum.tensor<[M, P], f32>) -> !einsum.tensor<[P, N], f32> ranks(M = 4, P = 4) {
  %S = einsum.einsum S[p, n] = %X[m, p] : !einsum.tensor<[P, N], f32>
  einsum.return %S : !einsum.tensor<[P, N], f32>
}
