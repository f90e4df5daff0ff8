// 1-pass attention (FuseMax): K and V are split into tiles of M0 keys; per tile a local max,
// a running max RM, the correction factor PRM = exp(RM[m1] - RM[m1+1]) rescaling the running
// denominator RD and the running numerator RNV; the division happens once, at the end. The
// running max starts at the lowest finite float (not -inf), so a tile whose keys are all masked
// (-inf) contributes exp(-inf - L) = 0 instead of exp(-inf - (-inf)) = NaN.
einsum.cascade @attention(%Q: !einsum.tensor<[E, P], f32>, %K: !einsum.tensor<[E, M], f32>, %V: !einsum.tensor<[F, M], f32>) -> !einsum.tensor<[F, P], f32> ranks(E = 64, F = 64, M = 1024, P = 1024, M0 = 256, M1 = M / M0) {
  %BK = einsum.einsum BK[e, m1, m0] = %K[e, m1*M0+m0] : !einsum.tensor<[E, M1, M0], f32>
  %BV = einsum.einsum BV[f, m1, m0] = %V[f, m1*M0+m0] : !einsum.tensor<[F, M1, M0], f32>
  %QK = einsum.einsum QK[m1, m0, p] = %Q[e, p] * %BK[e, m1, m0] : !einsum.tensor<[M1, M0, P], f32>
  %LM = einsum.einsum LM[m1, p] = %QK[m1, m0, p] :: max(m0) : !einsum.tensor<[M1, P], f32>
  %RM = einsum.einsum RM[m1+1, p] = max(RM[m1, p], %LM[m1, p]) init(-3.4028235e+38) : !einsum.tensor<[M1, P], f32>
  %SLN = einsum.einsum SLN[m1, m0, p] = exp(%QK[m1, m0, p] - %RM[m1+1, p]) : !einsum.tensor<[M1, M0, P], f32>
  %PRM = einsum.einsum PRM[m1, p] = exp(%RM[m1, p] - %RM[m1+1, p]) : !einsum.tensor<[M1, P], f32>
  %SPD = einsum.einsum SPD[m1, p] = %PRM[m1, p] * %RD[m1, p] : !einsum.tensor<[M1, P], f32>
  %SLD = einsum.einsum SLD[m1, p] = %SLN[m1, m0, p] : !einsum.tensor<[M1, P], f32>
  %RD = einsum.einsum RD[m1+1, p] = %SPD[m1, p] + %SLD[m1, p] init(0.0) : !einsum.tensor<[M1, P], f32>
  %SPNV = einsum.einsum SPNV[m1, f, p] = %PRM[m1, p] * %RNV[m1, f, p] : !einsum.tensor<[M1, F, P], f32>
  %SLNV = einsum.einsum SLNV[m1, f, p] = %SLN[m1, m0, p] * %BV[f, m1, m0] : !einsum.tensor<[M1, F, P], f32>
  %RNV = einsum.einsum RNV[m1+1, f, p] = %SPNV[m1, f, p] + %SLNV[m1, f, p] init(0.0) : !einsum.tensor<[M1, F, P], f32>
  %AV = einsum.einsum AV[f, p] = %RNV[M1, f, p] / %RD[M1, p] : !einsum.tensor<[F, P], f32>
  einsum.return %AV : !einsum.tensor<[F, P], f32>
}
