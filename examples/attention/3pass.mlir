// 3-pass attention (FuseMax, MICRO 2024, Section 3): a full max over M, a full sum over M, then
// the normalised probabilities times V. Scaling by 1/sqrt(E) is folded into Q.
einsum.cascade @attention(%Q: !einsum.tensor<[E, P], f32>, %K: !einsum.tensor<[E, M], f32>, %V: !einsum.tensor<[F, M], f32>) -> !einsum.tensor<[F, P], f32> ranks(E = 64, F = 64, M = 1024, P = 1024) {
  %QK = einsum.einsum QK[m, p] = %Q[e, p] * %K[e, m] : !einsum.tensor<[M, P], f32>
  %GM = einsum.einsum GM[p] = %QK[m, p] :: max(m) : !einsum.tensor<[P], f32>
  %SN = einsum.einsum SN[m, p] = exp(%QK[m, p] - %GM[p]) : !einsum.tensor<[M, P], f32>
  %SD = einsum.einsum SD[p] = %SN[m, p] : !einsum.tensor<[P], f32>
  %A = einsum.einsum A[m, p] = %SN[m, p] / %SD[p] : !einsum.tensor<[M, P], f32>
  %AV = einsum.einsum AV[f, p] = %A[m, p] * %V[f, m] : !einsum.tensor<[F, P], f32>
  einsum.return %AV : !einsum.tensor<[F, P], f32>
}
