// fuse-numerator: a + reduction over M of a product with one factor exp(y - RM[M]) (RM a running
// max read at its final value) becomes a running numerator RNV rescaled by
// PRM = exp(RM[m] - RM[m+1]); the factors that do not depend on M (the normaliser 1 / RD[M],
// however it is written) multiply the final RNV[M] once, and the factors that do (V, a dropout
// mask) stay in the sum. Existing PRM and SLN Einsums are reused.
// RUN: einsum-opt %s --split-input-file -p 'fuse-numerator' 2>/dev/null | filecheck %s
// RUN: einsum-opt %s --split-input-file -p 'fuse-numerator' --check-equivalence 2>&1 | filecheck %s --check-prefix=EQ
// RUN: einsum-opt %s --split-input-file -p 'fuse-numerator,count-passes' 2>/dev/null | filecheck %s --check-prefix=PASSES

// EQ-DAG: check-equivalence: @online AV: {{.*}}: ok
// EQ-DAG: check-equivalence: @tiled AV: {{.*}}: ok
// EQ-DAG: check-equivalence: @reciprocal AV: {{.*}}: ok
// EQ-DAG: check-equivalence: @dropout AV: {{.*}}: ok
// EQ-DAG: check-equivalence: @deferred AV: {{.*}}: ok
// EQ-DAG: check-equivalence: @softmax A: {{.*}}: ok

// PASSES: @online({{.*}}passes = {E = 1 : i64, F = 1 : i64, M = 1 : i64, P = 1 : i64}}
// PASSES: @tiled({{.*}}passes = {F = 1 : i64, P = 1 : i64, M0 = 2 : i64, M1 = 1 : i64}}
// PASSES: @reciprocal({{.*}}passes = {F = 1 : i64, M = 1 : i64, P = 1 : i64}}
// PASSES: @dropout({{.*}}passes = {F = 1 : i64, M = 1 : i64, P = 1 : i64}}
// PASSES: @deferred({{.*}}passes = {F = 1 : i64, M = 1 : i64, P = 1 : i64}}
// PASSES: @softmax({{.*}}passes = {M = 2 : i64, P = 1 : i64}}

// Unsplit (the paper's 2-pass attention): PRM and SLN are built, then SPNV, SLNV, RNV and the
// division.
einsum.cascade @online(%Q: !einsum.tensor<[E, P], f32>, %K: !einsum.tensor<[E, M], f32>, %V: !einsum.tensor<[F, M], f32>) -> !einsum.tensor<[F, P], f32> ranks(E = 2, F = 3, M = 6, P = 4) {
  %QK = einsum.einsum QK[m, p] = %Q[e, p] * %K[e, m] : !einsum.tensor<[M, P], f32>
  %RM = einsum.einsum RM[m+1, p] = max(RM[m, p], %QK[m, p]) init(-inf) : !einsum.tensor<[M, P], f32>
  %RD = einsum.einsum RD[m+1, p] = RD[m, p] * exp(%RM[m, p] - %RM[m+1, p]) + exp(%QK[m, p] - %RM[m+1, p]) init(0.0) : !einsum.tensor<[M, P], f32>
  %A = einsum.einsum A[m, p] = exp(%QK[m, p] - %RM[M, p]) / %RD[M, p] : !einsum.tensor<[M, P], f32>
  %AV = einsum.einsum AV[f, p] = %A[m, p] * %V[f, m] : !einsum.tensor<[F, P], f32>
  einsum.return %AV : !einsum.tensor<[F, P], f32>
}

// CHECK-LABEL: einsum.cascade @online(%Q: !einsum.tensor<[E, P], f32>, %K: !einsum.tensor<[E, M], f32>, %V: !einsum.tensor<[F, M], f32>) -> !einsum.tensor<[F, P], f32> ranks(E = 2, F = 3, M = 6, P = 4) {
// CHECK-NEXT:    %QK = einsum.einsum QK[m, p] = %Q[e, p] * %K[e, m] : !einsum.tensor<[M, P], f32>
// CHECK-NEXT:    %RM = einsum.einsum RM[m+1, p] = max(RM[m, p], %QK[m, p]) init(-inf) : !einsum.tensor<[M, P], f32>
// CHECK-NEXT:    %RD = einsum.einsum RD[m+1, p] = RD[m, p] * exp(%RM[m, p] - %RM[m+1, p]) + exp(%QK[m, p] - %RM[m+1, p]) init(0.0) : !einsum.tensor<[M, P], f32>
// CHECK-NEXT:    %PRM = einsum.einsum PRM[m, p] = exp(%RM[m, p] - %RM[m+1, p]) : !einsum.tensor<[M, P], f32>
// CHECK-NEXT:    %SLN = einsum.einsum SLN[m, p] = exp(%QK[m, p] - %RM[m+1, p]) : !einsum.tensor<[M, P], f32>
// CHECK-NEXT:    %SPNV = einsum.einsum SPNV[m, f, p] = %PRM[m, p] * %RNV[m, f, p] : !einsum.tensor<[M, F, P], f32>
// CHECK-NEXT:    %SLNV = einsum.einsum SLNV[m, f, p] = %SLN[m, p] * %V[f, m] : !einsum.tensor<[M, F, P], f32>
// CHECK-NEXT:    %RNV = einsum.einsum RNV[m+1, f, p] = %SPNV[m, f, p] + %SLNV[m, f, p] init(0.0) : !einsum.tensor<[M, F, P], f32>
// CHECK-NEXT:    %AV = einsum.einsum AV[f, p] = %RNV[M, f, p] / %RD[M, p] : !einsum.tensor<[F, P], f32>
// CHECK-NEXT:    einsum.return %AV : !einsum.tensor<[F, P], f32>
// CHECK-NEXT:  }

// -----

// Split (the tiled form fuse-max-sum produces): PRM and SLN are reused, SLNV reduces the tile.
einsum.cascade @tiled(%X: !einsum.tensor<[M, P], f32>, %V: !einsum.tensor<[F, M], f32>) -> !einsum.tensor<[F, P], f32> ranks(F = 3, M = 8, P = 2, M0 = 4, M1 = M / M0) {
  %BX = einsum.einsum BX[m1, m0, p] = %X[m1*M0+m0, p] : !einsum.tensor<[M1, M0, P], f32>
  %BV = einsum.einsum BV[f, m1, m0] = %V[f, m1*M0+m0] : !einsum.tensor<[F, M1, M0], f32>
  %LM = einsum.einsum LM[m1, p] = %BX[m1, m0, p] :: max(m0) : !einsum.tensor<[M1, P], f32>
  %RM = einsum.einsum RM[m1+1, p] = max(RM[m1, p], %LM[m1, p]) init(-3.4028235e+38) : !einsum.tensor<[M1, P], f32>
  %SLN = einsum.einsum SLN[m1, m0, p] = exp(%BX[m1, m0, p] - %RM[m1+1, p]) : !einsum.tensor<[M1, M0, P], f32>
  %PRM = einsum.einsum PRM[m1, p] = exp(%RM[m1, p] - %RM[m1+1, p]) : !einsum.tensor<[M1, P], f32>
  %SPD = einsum.einsum SPD[m1, p] = %PRM[m1, p] * %RD[m1, p] : !einsum.tensor<[M1, P], f32>
  %SLD = einsum.einsum SLD[m1, p] = %SLN[m1, m0, p] : !einsum.tensor<[M1, P], f32>
  %RD = einsum.einsum RD[m1+1, p] = %SPD[m1, p] + %SLD[m1, p] init(0.0) : !einsum.tensor<[M1, P], f32>
  %SN = einsum.einsum SN[m1, m0, p] = exp(%BX[m1, m0, p] - %RM[M1, p]) : !einsum.tensor<[M1, M0, P], f32>
  %A = einsum.einsum A[m1, m0, p] = %SN[m1, m0, p] / %RD[M1, p] : !einsum.tensor<[M1, M0, P], f32>
  %AV = einsum.einsum AV[f, p] = %A[m1, m0, p] * %BV[f, m1, m0] : !einsum.tensor<[F, P], f32>
  einsum.return %AV : !einsum.tensor<[F, P], f32>
}

// CHECK-LABEL: einsum.cascade @tiled(%X: !einsum.tensor<[M, P], f32>, %V: !einsum.tensor<[F, M], f32>) -> !einsum.tensor<[F, P], f32> ranks(F = 3, M = 8, P = 2, M0 = 4, M1 = M / M0) {
// CHECK-NEXT:    %BX = einsum.einsum BX[m1, m0, p] = %X[m1*M0+m0, p] : !einsum.tensor<[M1, M0, P], f32>
// CHECK-NEXT:    %BV = einsum.einsum BV[f, m1, m0] = %V[f, m1*M0+m0] : !einsum.tensor<[F, M1, M0], f32>
// CHECK-NEXT:    %LM = einsum.einsum LM[m1, p] = %BX[m1, m0, p] :: max(m0) : !einsum.tensor<[M1, P], f32>
// CHECK-NEXT:    %RM = einsum.einsum RM[m1+1, p] = max(RM[m1, p], %LM[m1, p]) init(-3.4028235e+38) : !einsum.tensor<[M1, P], f32>
// CHECK-NEXT:    %SLN = einsum.einsum SLN[m1, m0, p] = exp(%BX[m1, m0, p] - %RM[m1+1, p]) : !einsum.tensor<[M1, M0, P], f32>
// CHECK-NEXT:    %PRM = einsum.einsum PRM[m1, p] = exp(%RM[m1, p] - %RM[m1+1, p]) : !einsum.tensor<[M1, P], f32>
// CHECK-NEXT:    %SPD = einsum.einsum SPD[m1, p] = %PRM[m1, p] * %RD[m1, p] : !einsum.tensor<[M1, P], f32>
// CHECK-NEXT:    %SLD = einsum.einsum SLD[m1, p] = %SLN[m1, m0, p] : !einsum.tensor<[M1, P], f32>
// CHECK-NEXT:    %RD = einsum.einsum RD[m1+1, p] = %SPD[m1, p] + %SLD[m1, p] init(0.0) : !einsum.tensor<[M1, P], f32>
// CHECK-NEXT:    %SPNV = einsum.einsum SPNV[m1, f, p] = %PRM[m1, p] * %RNV[m1, f, p] : !einsum.tensor<[M1, F, P], f32>
// CHECK-NEXT:    %SLNV = einsum.einsum SLNV[m1, f, p] = %SLN[m1, m0, p] * %BV[f, m1, m0] : !einsum.tensor<[M1, F, P], f32>
// CHECK-NEXT:    %RNV = einsum.einsum RNV[m1+1, f, p] = %SPNV[m1, f, p] + %SLNV[m1, f, p] init(0.0) : !einsum.tensor<[M1, F, P], f32>
// CHECK-NEXT:    %AV = einsum.einsum AV[f, p] = %RNV[M1, f, p] / %RD[M1, p] : !einsum.tensor<[F, P], f32>
// CHECK-NEXT:    einsum.return %AV : !einsum.tensor<[F, P], f32>
// CHECK-NEXT:  }

// -----

// The normaliser as a multiplication by its reciprocal, in its own Einsum: R stays outside.
einsum.cascade @reciprocal(%X: !einsum.tensor<[M, P], f32>, %V: !einsum.tensor<[F, M], f32>) -> !einsum.tensor<[F, P], f32> ranks(F = 3, M = 6, P = 2) {
  %RM = einsum.einsum RM[m+1, p] = max(RM[m, p], %X[m, p]) init(-3.4028235e+38) : !einsum.tensor<[M, P], f32>
  %RD = einsum.einsum RD[m+1, p] = RD[m, p] * exp(%RM[m, p] - %RM[m+1, p]) + exp(%X[m, p] - %RM[m+1, p]) init(0.0) : !einsum.tensor<[M, P], f32>
  %SN = einsum.einsum SN[m, p] = exp(%X[m, p] - %RM[M, p]) : !einsum.tensor<[M, P], f32>
  %R = einsum.einsum R[p] = 1.0 / %RD[M, p] : !einsum.tensor<[P], f32>
  %AV = einsum.einsum AV[f, p] = %SN[m, p] * %R[p] * %V[f, m] : !einsum.tensor<[F, P], f32>
  einsum.return %AV : !einsum.tensor<[F, P], f32>
}

// CHECK-LABEL: einsum.cascade @reciprocal(%X: !einsum.tensor<[M, P], f32>, %V: !einsum.tensor<[F, M], f32>) -> !einsum.tensor<[F, P], f32> ranks(F = 3, M = 6, P = 2) {
// CHECK-NEXT:    %RM = einsum.einsum RM[m+1, p] = max(RM[m, p], %X[m, p]) init(-3.4028235e+38) : !einsum.tensor<[M, P], f32>
// CHECK-NEXT:    %RD = einsum.einsum RD[m+1, p] = RD[m, p] * exp(%RM[m, p] - %RM[m+1, p]) + exp(%X[m, p] - %RM[m+1, p]) init(0.0) : !einsum.tensor<[M, P], f32>
// CHECK-NEXT:    %R = einsum.einsum R[p] = 1.0 / %RD[M, p] : !einsum.tensor<[P], f32>
// CHECK-NEXT:    %PRM = einsum.einsum PRM[m, p] = exp(%RM[m, p] - %RM[m+1, p]) : !einsum.tensor<[M, P], f32>
// CHECK-NEXT:    %SLN = einsum.einsum SLN[m, p] = exp(%X[m, p] - %RM[m+1, p]) : !einsum.tensor<[M, P], f32>
// CHECK-NEXT:    %SPNV = einsum.einsum SPNV[m, f, p] = %PRM[m, p] * %RNV[m, f, p] : !einsum.tensor<[M, F, P], f32>
// CHECK-NEXT:    %SLNV = einsum.einsum SLNV[m, f, p] = %SLN[m, p] * %V[f, m] : !einsum.tensor<[M, F, P], f32>
// CHECK-NEXT:    %RNV = einsum.einsum RNV[m+1, f, p] = %SPNV[m, f, p] + %SLNV[m, f, p] init(0.0) : !einsum.tensor<[M, F, P], f32>
// CHECK-NEXT:    %AV = einsum.einsum AV[f, p] = %RNV[M, f, p] * %R[p] : !einsum.tensor<[F, P], f32>
// CHECK-NEXT:    einsum.return %AV : !einsum.tensor<[F, P], f32>
// CHECK-NEXT:  }

// -----

// A dropout mask on the probabilities (and its rescaling) commutes with the deferred division.
einsum.cascade @dropout(%X: !einsum.tensor<[M, P], f32>, %V: !einsum.tensor<[F, M], f32>, %D: !einsum.tensor<[M, P], f32>) -> !einsum.tensor<[F, P], f32> ranks(F = 3, M = 6, P = 2) {
  %RM = einsum.einsum RM[m+1, p] = max(RM[m, p], %X[m, p]) init(-3.4028235e+38) : !einsum.tensor<[M, P], f32>
  %RD = einsum.einsum RD[m+1, p] = RD[m, p] * exp(%RM[m, p] - %RM[m+1, p]) + exp(%X[m, p] - %RM[m+1, p]) init(0.0) : !einsum.tensor<[M, P], f32>
  %SN = einsum.einsum SN[m, p] = exp(%X[m, p] - %RM[M, p]) : !einsum.tensor<[M, P], f32>
  %A = einsum.einsum A[m, p] = %SN[m, p] * (1.0 / %RD[M, p]) : !einsum.tensor<[M, P], f32>
  %AD = einsum.einsum AD[m, p] = %A[m, p] * %D[m, p] / 0.9 : !einsum.tensor<[M, P], f32>
  %AV = einsum.einsum AV[f, p] = %AD[m, p] * %V[f, m] : !einsum.tensor<[F, P], f32>
  einsum.return %AV : !einsum.tensor<[F, P], f32>
}

// CHECK-LABEL: einsum.cascade @dropout(%X: !einsum.tensor<[M, P], f32>, %V: !einsum.tensor<[F, M], f32>, %D: !einsum.tensor<[M, P], f32>) -> !einsum.tensor<[F, P], f32> ranks(F = 3, M = 6, P = 2) {
// CHECK-NEXT:    %RM = einsum.einsum RM[m+1, p] = max(RM[m, p], %X[m, p]) init(-3.4028235e+38) : !einsum.tensor<[M, P], f32>
// CHECK-NEXT:    %RD = einsum.einsum RD[m+1, p] = RD[m, p] * exp(%RM[m, p] - %RM[m+1, p]) + exp(%X[m, p] - %RM[m+1, p]) init(0.0) : !einsum.tensor<[M, P], f32>
// CHECK-NEXT:    %PRM = einsum.einsum PRM[m, p] = exp(%RM[m, p] - %RM[m+1, p]) : !einsum.tensor<[M, P], f32>
// CHECK-NEXT:    %SLN = einsum.einsum SLN[m, p] = exp(%X[m, p] - %RM[m+1, p]) : !einsum.tensor<[M, P], f32>
// CHECK-NEXT:    %SPNV = einsum.einsum SPNV[m, f, p] = %PRM[m, p] * %RNV[m, f, p] : !einsum.tensor<[M, F, P], f32>
// CHECK-NEXT:    %SLNV = einsum.einsum SLNV[m, f, p] = %SLN[m, p] * %D[m, p] * %V[f, m] : !einsum.tensor<[M, F, P], f32>
// CHECK-NEXT:    %RNV = einsum.einsum RNV[m+1, f, p] = %SPNV[m, f, p] + %SLNV[m, f, p] init(0.0) : !einsum.tensor<[M, F, P], f32>
// CHECK-NEXT:    %AV = einsum.einsum AV[f, p] = %RNV[M, f, p] / (%RD[M, p] * 0.9) : !einsum.tensor<[F, P], f32>
// CHECK-NEXT:    einsum.return %AV : !einsum.tensor<[F, P], f32>
// CHECK-NEXT:  }

// -----

// The division deferred by the user until after the sum with V (FlashAttention's order):
// the sum becomes the running numerator, the division stays where it is.
einsum.cascade @deferred(%X: !einsum.tensor<[M, P], f32>, %V: !einsum.tensor<[F, M], f32>) -> !einsum.tensor<[F, P], f32> ranks(F = 3, M = 6, P = 2) {
  %RM = einsum.einsum RM[m+1, p] = max(RM[m, p], %X[m, p]) init(-3.4028235e+38) : !einsum.tensor<[M, P], f32>
  %RD = einsum.einsum RD[m+1, p] = RD[m, p] * exp(%RM[m, p] - %RM[m+1, p]) + exp(%X[m, p] - %RM[m+1, p]) init(0.0) : !einsum.tensor<[M, P], f32>
  %SN = einsum.einsum SN[m, p] = exp(%X[m, p] - %RM[M, p]) : !einsum.tensor<[M, P], f32>
  %SNV = einsum.einsum SNV[f, p] = %SN[m, p] * %V[f, m] : !einsum.tensor<[F, P], f32>
  %AV = einsum.einsum AV[f, p] = %SNV[f, p] / %RD[M, p] : !einsum.tensor<[F, P], f32>
  einsum.return %AV : !einsum.tensor<[F, P], f32>
}

// CHECK-LABEL: einsum.cascade @deferred(%X: !einsum.tensor<[M, P], f32>, %V: !einsum.tensor<[F, M], f32>) -> !einsum.tensor<[F, P], f32> ranks(F = 3, M = 6, P = 2) {
// CHECK-NEXT:    %RM = einsum.einsum RM[m+1, p] = max(RM[m, p], %X[m, p]) init(-3.4028235e+38) : !einsum.tensor<[M, P], f32>
// CHECK-NEXT:    %RD = einsum.einsum RD[m+1, p] = RD[m, p] * exp(%RM[m, p] - %RM[m+1, p]) + exp(%X[m, p] - %RM[m+1, p]) init(0.0) : !einsum.tensor<[M, P], f32>
// CHECK-NEXT:    %PRM = einsum.einsum PRM[m, p] = exp(%RM[m, p] - %RM[m+1, p]) : !einsum.tensor<[M, P], f32>
// CHECK-NEXT:    %SLN = einsum.einsum SLN[m, p] = exp(%X[m, p] - %RM[m+1, p]) : !einsum.tensor<[M, P], f32>
// CHECK-NEXT:    %SPNV = einsum.einsum SPNV[m, f, p] = %PRM[m, p] * %RNV[m, f, p] : !einsum.tensor<[M, F, P], f32>
// CHECK-NEXT:    %SLNV = einsum.einsum SLNV[m, f, p] = %SLN[m, p] * %V[f, m] : !einsum.tensor<[M, F, P], f32>
// CHECK-NEXT:    %RNV = einsum.einsum RNV[m+1, f, p] = %SPNV[m, f, p] + %SLNV[m, f, p] init(0.0) : !einsum.tensor<[M, F, P], f32>
// CHECK-NEXT:    %SNV = einsum.einsum SNV[f, p] = %RNV[M, f, p] : !einsum.tensor<[F, P], f32>
// CHECK-NEXT:    %AV = einsum.einsum AV[f, p] = %SNV[f, p] / %RD[M, p] : !einsum.tensor<[F, P], f32>
// CHECK-NEXT:    einsum.return %AV : !einsum.tensor<[F, P], f32>
// CHECK-NEXT:  }

// -----

// Softmax's A is an output per element: nothing to defer, 2 passes stay, and a remark says why.
// RUN: einsum-opt %s --split-input-file -p 'fuse-numerator' 2>&1 | filecheck %s --check-prefix=REMARK
// REMARK: remark: fuse-numerator: @softmax: A reads the final values of RM and RD per element of M and is a cascade output over M: the final value is needed before any element can be written, so 2 passes is the minimum
einsum.cascade @softmax(%X: !einsum.tensor<[M, P], f32>) -> !einsum.tensor<[M, P], f32> ranks(M = 6, P = 2) {
  %RM = einsum.einsum RM[m+1, p] = max(RM[m, p], %X[m, p]) init(-3.4028235e+38) : !einsum.tensor<[M, P], f32>
  %RD = einsum.einsum RD[m+1, p] = RD[m, p] * exp(%RM[m, p] - %RM[m+1, p]) + exp(%X[m, p] - %RM[m+1, p]) init(0.0) : !einsum.tensor<[M, P], f32>
  %A = einsum.einsum A[m, p] = exp(%X[m, p] - %RM[M, p]) / %RD[M, p] : !einsum.tensor<[M, P], f32>
  einsum.return %A : !einsum.tensor<[M, P], f32>
}

// CHECK-LABEL: einsum.cascade @softmax(%X: !einsum.tensor<[M, P], f32>) -> !einsum.tensor<[M, P], f32> ranks(M = 6, P = 2) {
// CHECK-NEXT:    %RM = einsum.einsum RM[m+1, p] = max(RM[m, p], %X[m, p]) init(-3.4028235e+38) : !einsum.tensor<[M, P], f32>
// CHECK-NEXT:    %RD = einsum.einsum RD[m+1, p] = RD[m, p] * exp(%RM[m, p] - %RM[m+1, p]) + exp(%X[m, p] - %RM[m+1, p]) init(0.0) : !einsum.tensor<[M, P], f32>
// CHECK-NEXT:    %A = einsum.einsum A[m, p] = exp(%X[m, p] - %RM[M, p]) / %RD[M, p] : !einsum.tensor<[M, P], f32>
// CHECK-NEXT:    einsum.return %A : !einsum.tensor<[M, P], f32>
// CHECK-NEXT:  }

// The 3-pass softmax example after fuse-max-sum gives the same remark.
// RUN: einsum-opt %examples/softmax.einsum -p 'fuse-max-sum,fuse-numerator' 2>&1 | filecheck %s --check-prefix=EXAMPLE
// EXAMPLE: remark: fuse-numerator: @softmax: A reads the final value of RD per element of M and is a cascade output over M: {{.*}}so 2 passes is the minimum
