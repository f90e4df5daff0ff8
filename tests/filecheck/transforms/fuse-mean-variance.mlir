// fuse-mean-variance: a mean S / N and the + reduction of squared deviations from it become
// Welford's running count RC, mean RMU and squared deviations RM2 in one pass over N.
// RUN: einsum-opt %s --split-input-file -p 'fuse-mean-variance' | filecheck %s
// RUN: einsum-opt %s --split-input-file -p 'fuse-mean-variance' --check-equivalence 2>&1 | filecheck %s --check-prefix=EQ
// RUN: einsum-opt %s --split-input-file -p 'fuse-mean-variance,count-passes' | filecheck %s --check-prefix=PASSES

// EQ-DAG: check-equivalence: @norm Y: {{.*}}: ok
// EQ-DAG: check-equivalence: @stats MU: {{.*}}: ok
// EQ-DAG: check-equivalence: @stats SQ: {{.*}}: ok

// PASSES: @norm({{.*}}passes = {N = 2 : i64, T = 1 : i64}}
// PASSES: @stats({{.*}}passes = {N = 1 : i64, T = 1 : i64}}

// Layer norm without gain and bias: the deviations D are their own Einsum.
einsum.cascade @norm(%X: !einsum.tensor<[N, T], f32>) -> !einsum.tensor<[N, T], f32> ranks(N = 6, T = 3) {
  %S = einsum.einsum S[t] = %X[n, t] : !einsum.tensor<[T], f32>
  %MU = einsum.einsum MU[t] = %S[t] / N : !einsum.tensor<[T], f32>
  %D = einsum.einsum D[n, t] = %X[n, t] - %MU[t] : !einsum.tensor<[N, T], f32>
  %SQ = einsum.einsum SQ[t] = %D[n, t] * %D[n, t] : !einsum.tensor<[T], f32>
  %Y = einsum.einsum Y[n, t] = %D[n, t] / sqrt(%SQ[t] / N + 1.0e-05) : !einsum.tensor<[N, T], f32>
  einsum.return %Y : !einsum.tensor<[N, T], f32>
}

// CHECK-LABEL: einsum.cascade @norm(
// CHECK-NEXT:    %RC = einsum.einsum RC[n+1] = RC[n] + 1.0 init(0.0) : !einsum.tensor<[N], f32>
// CHECK-NEXT:    %RMU = einsum.einsum RMU[n+1, t] = RMU[n, t] + (%X[n, t] - RMU[n, t]) / %RC[n+1] init(0.0) : !einsum.tensor<[N, T], f32>
// CHECK-NEXT:    %RM2 = einsum.einsum RM2[n+1, t] = RM2[n, t] + (%X[n, t] - %RMU[n, t]) * (%X[n, t] - %RMU[n+1, t]) init(0.0) : !einsum.tensor<[N, T], f32>
// CHECK-NEXT:    %D = einsum.einsum D[n, t] = %X[n, t] - %RMU[N, t] : !einsum.tensor<[N, T], f32>
// CHECK-NEXT:    %Y = einsum.einsum Y[n, t] = %D[n, t] / sqrt(%RM2[N, t] / N + 1.0e-05) : !einsum.tensor<[N, T], f32>
// CHECK-NEXT:    einsum.return %Y : !einsum.tensor<[N, T], f32>
// CHECK-NEXT:  }

// -----

// The summed value is an expression, the deviations are inline, and MU and SQ are outputs.
einsum.cascade @stats(%X: !einsum.tensor<[N, T], f32>) -> (!einsum.tensor<[T], f32>, !einsum.tensor<[T], f32>) ranks(N = 5, T = 2) {
  %S = einsum.einsum S[t] = %X[n, t] * 3.0 : !einsum.tensor<[T], f32>
  %MU = einsum.einsum MU[t] = %S[t] / N : !einsum.tensor<[T], f32>
  %SQ = einsum.einsum SQ[t] = (%X[n, t] * 3.0 - %MU[t]) * (%X[n, t] * 3.0 - %MU[t]) : !einsum.tensor<[T], f32>
  einsum.return %MU, %SQ : !einsum.tensor<[T], f32>, !einsum.tensor<[T], f32>
}

// CHECK-LABEL: einsum.cascade @stats(
// CHECK-NEXT:    %RC = einsum.einsum RC[n+1] = RC[n] + 1.0 init(0.0) : !einsum.tensor<[N], f32>
// CHECK-NEXT:    %RMU = einsum.einsum RMU[n+1, t] = RMU[n, t] + (%X[n, t] * 3.0 - RMU[n, t]) / %RC[n+1] init(0.0) : !einsum.tensor<[N, T], f32>
// CHECK-NEXT:    %RM2 = einsum.einsum RM2[n+1, t] = RM2[n, t] + (%X[n, t] * 3.0 - %RMU[n, t]) * (%X[n, t] * 3.0 - %RMU[n+1, t]) init(0.0) : !einsum.tensor<[N, T], f32>
// CHECK-NEXT:    %MU = einsum.einsum MU[t] = %RMU[N, t] : !einsum.tensor<[T], f32>
// CHECK-NEXT:    %SQ = einsum.einsum SQ[t] = %RM2[N, t] : !einsum.tensor<[T], f32>
// CHECK-NEXT:    einsum.return %MU, %SQ : !einsum.tensor<[T], f32>, !einsum.tensor<[T], f32>
// CHECK-NEXT:  }

// The layer-norm example: 3 passes over N become 2, with the same results.
// RUN: einsum-opt %examples/layernorm.einsum --ranks N=64,T=8 -p 'fuse-mean-variance,count-passes' --check-equivalence 2>&1 | filecheck %s --check-prefix=EXAMPLE
// EXAMPLE-DAG: check-equivalence: @layernorm Y: {{.*}}: ok
// EXAMPLE-DAG: passes = {N = 2 : i64, T = 1 : i64}

// Nothing to merge: a remark, and the attention cascade is printed unchanged.
// RUN: einsum-opt %examples/attention/3pass.einsum -p fuse-mean-variance 2>&1 | filecheck %s --check-prefix=NONE
// NONE-DAG: remark: fuse-mean-variance: @attention: nothing to merge: no mean S / R feeds a + reduction of squared deviations over the same rank
// NONE-DAG: %GM = einsum.einsum GM[p] = %QK[m, p] :: max(m) : !einsum.tensor<[P], f32>
