// fuse-mean-variance: a mean S / N and the + reduction of squared deviations from it become a
// running count RC, mean RMU and squared deviations RM2 in one pass over N: Welford's update on
// an unsplit rank, Chan's combination of the tiles' means and squared deviations on a split one.
// RUN: einsum-opt %s --split-input-file -p 'fuse-mean-variance' | filecheck %s
// RUN: einsum-opt %s --split-input-file -p 'fuse-mean-variance' --check-equivalence 2>&1 | filecheck %s --check-prefix=EQ
// RUN: einsum-opt %s --split-input-file -p 'fuse-mean-variance,count-passes' | filecheck %s --check-prefix=PASSES

// EQ-DAG: check-equivalence: @norm Y: {{.*}}: ok
// EQ-DAG: check-equivalence: @stats MU: {{.*}}: ok
// EQ-DAG: check-equivalence: @stats SQ: {{.*}}: ok
// EQ-DAG: check-equivalence: @tiled VAR: {{.*}}: ok

// PASSES: @norm({{.*}}passes = {N = 2 : i64, T = 1 : i64}}
// PASSES: @stats({{.*}}passes = {N = 1 : i64, T = 1 : i64}}
// PASSES: @tiled({{.*}}passes = {T = 1 : i64, B = 1 : i64, N0 = 2 : i64, N1 = 1 : i64}}

// Layer norm without gain and bias: the deviations D are their own Einsum.
einsum.cascade @norm(%X: !einsum.tensor<[N, T], f32>) -> !einsum.tensor<[N, T], f32> ranks(N = 6, T = 3) {
  %S = einsum.einsum S[t] = %X[n, t] : !einsum.tensor<[T], f32>
  %MU = einsum.einsum MU[t] = %S[t] / N : !einsum.tensor<[T], f32>
  %D = einsum.einsum D[n, t] = %X[n, t] - %MU[t] : !einsum.tensor<[N, T], f32>
  %SQ = einsum.einsum SQ[t] = %D[n, t] * %D[n, t] : !einsum.tensor<[T], f32>
  %Y = einsum.einsum Y[n, t] = %D[n, t] / sqrt(%SQ[t] / N + 1.0e-05) : !einsum.tensor<[N, T], f32>
  einsum.return %Y : !einsum.tensor<[N, T], f32>
}

// CHECK-LABEL: einsum.cascade @norm(%X: !einsum.tensor<[N, T], f32>) -> !einsum.tensor<[N, T], f32> ranks(N = 6, T = 3) {
// CHECK-NEXT:    %RC = einsum.einsum RC[n+1, t] = RC[n, t] + 1.0 init(0.0) : !einsum.tensor<[N, T], f32>
// CHECK-NEXT:    %RMU = einsum.einsum RMU[n+1, t] = RMU[n, t] + (%X[n, t] - RMU[n, t]) / %RC[n+1, t] init(0.0) : !einsum.tensor<[N, T], f32>
// CHECK-NEXT:    %RM2 = einsum.einsum RM2[n+1, t] = RM2[n, t] + (%X[n, t] - %RMU[n, t]) * (%X[n, t] - %RMU[n+1, t]) init(0.0) : !einsum.tensor<[N, T], f32>
// CHECK-NEXT:    %D = einsum.einsum D[n, t] = %X[n, t] - %RMU[N, t] : !einsum.tensor<[N, T], f32>
// CHECK-NEXT:    %Y = einsum.einsum Y[n, t] = %D[n, t] / sqrt(%RM2[N, t] / N + 1.0e-05) : !einsum.tensor<[N, T], f32>
// CHECK-NEXT:    einsum.return %Y : !einsum.tensor<[N, T], f32>
// CHECK-NEXT:  }

// -----

// The summed value is an expression, the deviations are inline (written MU - X), MU and SQ
// are outputs, and MU lists nothing in another order than S (a one-rank row).
einsum.cascade @stats(%X: !einsum.tensor<[N, T], f32>) -> (!einsum.tensor<[T], f32>, !einsum.tensor<[T], f32>) ranks(N = 5, T = 2) {
  %S = einsum.einsum S[t] = %X[n, t] * 3.0 : !einsum.tensor<[T], f32>
  %MU = einsum.einsum MU[t] = %S[t] / N : !einsum.tensor<[T], f32>
  %SQ = einsum.einsum SQ[t] = (%MU[t] - %X[n, t] * 3.0) * (%MU[t] - %X[n, t] * 3.0) : !einsum.tensor<[T], f32>
  einsum.return %MU, %SQ : !einsum.tensor<[T], f32>, !einsum.tensor<[T], f32>
}

// CHECK-LABEL: einsum.cascade @stats(%X: !einsum.tensor<[N, T], f32>) -> (!einsum.tensor<[T], f32>, !einsum.tensor<[T], f32>) ranks(N = 5, T = 2) {
// CHECK-NEXT:    %RC = einsum.einsum RC[n+1, t] = RC[n, t] + 1.0 init(0.0) : !einsum.tensor<[N, T], f32>
// CHECK-NEXT:    %RMU = einsum.einsum RMU[n+1, t] = RMU[n, t] + (%X[n, t] * 3.0 - RMU[n, t]) / %RC[n+1, t] init(0.0) : !einsum.tensor<[N, T], f32>
// CHECK-NEXT:    %RM2 = einsum.einsum RM2[n+1, t] = RM2[n, t] + (%X[n, t] * 3.0 - %RMU[n, t]) * (%X[n, t] * 3.0 - %RMU[n+1, t]) init(0.0) : !einsum.tensor<[N, T], f32>
// CHECK-NEXT:    %MU = einsum.einsum MU[t] = %RMU[N, t] : !einsum.tensor<[T], f32>
// CHECK-NEXT:    %SQ = einsum.einsum SQ[t] = %RM2[N, t] : !einsum.tensor<[T], f32>
// CHECK-NEXT:    einsum.return %MU, %SQ : !einsum.tensor<[T], f32>, !einsum.tensor<[T], f32>
// CHECK-NEXT:  }

// -----

// Split into tiles of 4: each tile's sum LS, mean LMU and squared deviations LM2 join the running
// RMU and RM2 (Chan et al.), so the variance needs 1 pass over the tiles. The sum and the
// squares list their ranks in different orders.
einsum.cascade @tiled(%X: !einsum.tensor<[T, N, B], f32>) -> !einsum.tensor<[B, T], f32> ranks(N = 12, T = 2, B = 2, N0 = 4, N1 = N / N0) {
  %BX = einsum.einsum BX[t, n1, n0, b] = %X[t, n1*N0+n0, b] : !einsum.tensor<[T, N1, N0, B], f32>
  %S = einsum.einsum S[t, b] = %BX[t, n1, n0, b] : !einsum.tensor<[T, B], f32>
  %MU = einsum.einsum MU[b, t] = %S[t, b] / N : !einsum.tensor<[B, T], f32>
  %D = einsum.einsum D[n1, n0, b, t] = %BX[t, n1, n0, b] - %MU[b, t] : !einsum.tensor<[N1, N0, B, T], f32>
  %SQ = einsum.einsum SQ[b, t] = %D[n1, n0, b, t] * %D[n1, n0, b, t] : !einsum.tensor<[B, T], f32>
  %VAR = einsum.einsum VAR[b, t] = %SQ[b, t] / N : !einsum.tensor<[B, T], f32>
  einsum.return %VAR : !einsum.tensor<[B, T], f32>
}

// CHECK-LABEL: einsum.cascade @tiled(%X: !einsum.tensor<[T, N, B], f32>) -> !einsum.tensor<[B, T], f32> ranks(N = 12, T = 2, B = 2, N0 = 4, N1 = N / N0) {
// CHECK-NEXT:    %BX = einsum.einsum BX[t, n1, n0, b] = %X[t, n1*N0+n0, b] : !einsum.tensor<[T, N1, N0, B], f32>
// CHECK-NEXT:    %LS = einsum.einsum LS[n1, t, b] = %BX[t, n1, n0, b] : !einsum.tensor<[N1, T, B], f32>
// CHECK-NEXT:    %LMU = einsum.einsum LMU[n1, t, b] = %LS[n1, t, b] / N0 : !einsum.tensor<[N1, T, B], f32>
// CHECK-NEXT:    %LM2 = einsum.einsum LM2[n1, t, b] = (%BX[t, n1, n0, b] - %LMU[n1, t, b]) * (%BX[t, n1, n0, b] - %LMU[n1, t, b]) : !einsum.tensor<[N1, T, B], f32>
// CHECK-NEXT:    %RC = einsum.einsum RC[n1+1, t, b] = RC[n1, t, b] + N0 init(0.0) : !einsum.tensor<[N1, T, B], f32>
// CHECK-NEXT:    %RMU = einsum.einsum RMU[n1+1, t, b] = RMU[n1, t, b] + (%LMU[n1, t, b] - RMU[n1, t, b]) * N0 / %RC[n1+1, t, b] init(0.0) : !einsum.tensor<[N1, T, B], f32>
// CHECK-NEXT:    %RM2 = einsum.einsum RM2[n1+1, t, b] = RM2[n1, t, b] + %LM2[n1, t, b] + (%LMU[n1, t, b] - %RMU[n1, t, b]) * (%LMU[n1, t, b] - %RMU[n1, t, b]) * %RC[n1, t, b] * N0 / %RC[n1+1, t, b] init(0.0) : !einsum.tensor<[N1, T, B], f32>
// CHECK-NEXT:    %VAR = einsum.einsum VAR[b, t] = %RM2[N1, t, b] / N : !einsum.tensor<[B, T], f32>
// CHECK-NEXT:    einsum.return %VAR : !einsum.tensor<[B, T], f32>
// CHECK-NEXT:  }

// The layer-norm example: 3 passes over N become 2, with the same results.
// RUN: einsum-opt %examples/layernorm.einsum --ranks N=64,T=8 -p 'fuse-mean-variance,count-passes' --check-equivalence 2>&1 | filecheck %s --check-prefix=EXAMPLE
// EXAMPLE-DAG: check-equivalence: @layernorm Y: {{.*}}: ok
// EXAMPLE-DAG: passes = {N = 2 : i64, T = 1 : i64}

// Nothing to merge: a remark naming what is missing, and the attention cascade unchanged.
// RUN: einsum-opt %examples/attention/3pass.einsum -p fuse-mean-variance 2>&1 | filecheck %s --check-prefix=NONE
// NONE-DAG: remark: fuse-mean-variance: @attention: nothing to merge: no Einsum divides a sum over a rank by the rank's size (a mean S / R)
// NONE-DAG: %GM = einsum.einsum GM[p] = %QK[m, p] :: max(m) : !einsum.tensor<[P], f32>
