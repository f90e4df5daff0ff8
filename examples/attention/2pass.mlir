// 2-pass attention: the max and the sum of exponentials are merged into one running pass
// (online normaliser); a second pass over M computes A and A x V. The running max starts at
// the lowest finite float, so masked (-inf) first keys give exp(-inf - L) = 0, not NaN.
einsum.cascade @attention(%Q: !einsum.tensor<[E, P], f32>, %K: !einsum.tensor<[E, M], f32>, %V: !einsum.tensor<[F, M], f32>) -> !einsum.tensor<[F, P], f32> ranks(E = 64, F = 64, M = 1024, P = 1024) {
  %QK = einsum.einsum QK[m, p] = %Q[e, p] * %K[e, m] : !einsum.tensor<[M, P], f32>
  %RM = einsum.einsum RM[m+1, p] = max(RM[m, p], %QK[m, p]) init(-3.4028235e+38) : !einsum.tensor<[M, P], f32>
  %RD = einsum.einsum RD[m+1, p] = RD[m, p] * exp(%RM[m, p] - %RM[m+1, p]) + exp(%QK[m, p] - %RM[m+1, p]) init(0.0) : !einsum.tensor<[M, P], f32>
  %A = einsum.einsum A[m, p] = exp(%QK[m, p] - %RM[M, p]) / %RD[M, p] : !einsum.tensor<[M, P], f32>
  %AV = einsum.einsum AV[f, p] = %A[m, p] * %V[f, m] : !einsum.tensor<[F, P], f32>
  einsum.return %AV : !einsum.tensor<[F, P], f32>
}
