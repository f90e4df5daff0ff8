// fuse-max-sum: a full max G and the sum D of exp(y - G) over the same rank become a running
// max RM (started at the lowest finite value, so -inf inputs stay right) and a running sum RD
// corrected by exp(old max - new max); exponentials shifted by G read the final RM[M, .], sums
// read RD[M, .], and G itself, where it is read otherwise, is rebuilt from the final values
// (RM + log(min(RD, 1)): -inf on a fully masked row, as the input's max).
// RUN: einsum-opt %s --split-input-file -p 'fuse-max-sum' | filecheck %s
// RUN: einsum-opt %s --split-input-file -p 'fuse-max-sum' --check-equivalence 2>&1 | filecheck %s --check-prefix=EQ
// RUN: einsum-opt %s --split-input-file -p 'fuse-max-sum,count-passes' | filecheck %s --check-prefix=PASSES

// EQ-DAG: check-equivalence: @lse L: {{.*}}: ok
// EQ-DAG: check-equivalence: @tiled L: {{.*}}: ok
// EQ-DAG: check-equivalence: @returned G: {{.*}}: ok
// EQ-DAG: check-equivalence: @returned D: {{.*}}: ok
// EQ-DAG: check-equivalence: @layouts A: {{.*}}: ok
// EQ-DAG: check-equivalence: @scaled A: {{.*}}: ok

// PASSES: @lse({{.*}}passes = {M = 1 : i64, P = 1 : i64}}
// PASSES: @tiled({{.*}}passes = {P = 1 : i64, M0 = 2 : i64, M1 = 1 : i64}}
// PASSES: @returned({{.*}}passes = {M = 1 : i64, P = 1 : i64}}
// PASSES: @layouts({{.*}}passes = {M = 2 : i64, P = 1 : i64, B = 1 : i64}}
// PASSES: @scaled({{.*}}passes = {M = 2 : i64, P = 1 : i64}}

// Unsplit: the per-element online form.
einsum.cascade @lse(%X: !einsum.tensor<[M, P], f32>) -> !einsum.tensor<[P], f32> ranks(M = 6, P = 3) {
  %G = einsum.einsum G[p] = %X[m, p] :: max(m) : !einsum.tensor<[P], f32>
  %N = einsum.einsum N[m, p] = exp(%X[m, p] - %G[p]) : !einsum.tensor<[M, P], f32>
  %D = einsum.einsum D[p] = %N[m, p] : !einsum.tensor<[P], f32>
  %L = einsum.einsum L[p] = log(%D[p]) + %G[p] : !einsum.tensor<[P], f32>
  einsum.return %L : !einsum.tensor<[P], f32>
}

// CHECK-LABEL: einsum.cascade @lse(%X: !einsum.tensor<[M, P], f32>) -> !einsum.tensor<[P], f32> ranks(M = 6, P = 3) {
// CHECK-NEXT:    %RM = einsum.einsum RM[m+1, p] = max(RM[m, p], %X[m, p]) init(-3.4028235e+38) : !einsum.tensor<[M, P], f32>
// CHECK-NEXT:    %RD = einsum.einsum RD[m+1, p] = RD[m, p] * exp(%RM[m, p] - %RM[m+1, p]) + exp(%X[m, p] - %RM[m+1, p]) init(0.0) : !einsum.tensor<[M, P], f32>
// CHECK-NEXT:    %G = einsum.einsum G[p] = %RM[M, p] + log(min(%RD[M, p], 1.0)) : !einsum.tensor<[P], f32>
// CHECK-NEXT:    %L = einsum.einsum L[p] = log(%RD[M, p]) + %G[p] : !einsum.tensor<[P], f32>
// CHECK-NEXT:    einsum.return %L : !einsum.tensor<[P], f32>
// CHECK-NEXT:  }

// -----

// Split: the tiled form, with a local max LM over the tile and the running values over m1.
einsum.cascade @tiled(%X: !einsum.tensor<[M, P], f32>) -> !einsum.tensor<[P], f32> ranks(M = 8, P = 3, M0 = 4, M1 = M / M0) {
  %BX = einsum.einsum BX[m1, m0, p] = %X[m1*M0+m0, p] * 0.5 : !einsum.tensor<[M1, M0, P], f32>
  %G = einsum.einsum G[p] = %BX[m1, m0, p] :: max(m1, m0) : !einsum.tensor<[P], f32>
  %N = einsum.einsum N[m1, m0, p] = exp(%BX[m1, m0, p] - %G[p]) : !einsum.tensor<[M1, M0, P], f32>
  %D = einsum.einsum D[p] = %N[m1, m0, p] : !einsum.tensor<[P], f32>
  %L = einsum.einsum L[p] = log(%D[p]) + %G[p] : !einsum.tensor<[P], f32>
  einsum.return %L : !einsum.tensor<[P], f32>
}

// CHECK-LABEL: einsum.cascade @tiled(%X: !einsum.tensor<[M, P], f32>) -> !einsum.tensor<[P], f32> ranks(M = 8, P = 3, M0 = 4, M1 = M / M0) {
// CHECK-NEXT:    %BX = einsum.einsum BX[m1, m0, p] = %X[m1*M0+m0, p] * 0.5 : !einsum.tensor<[M1, M0, P], f32>
// CHECK-NEXT:    %LM = einsum.einsum LM[m1, p] = %BX[m1, m0, p] :: max(m0) : !einsum.tensor<[M1, P], f32>
// CHECK-NEXT:    %RM = einsum.einsum RM[m1+1, p] = max(RM[m1, p], %LM[m1, p]) init(-3.4028235e+38) : !einsum.tensor<[M1, P], f32>
// CHECK-NEXT:    %SLN = einsum.einsum SLN[m1, m0, p] = exp(%BX[m1, m0, p] - %RM[m1+1, p]) : !einsum.tensor<[M1, M0, P], f32>
// CHECK-NEXT:    %PRM = einsum.einsum PRM[m1, p] = exp(%RM[m1, p] - %RM[m1+1, p]) : !einsum.tensor<[M1, P], f32>
// CHECK-NEXT:    %SPD = einsum.einsum SPD[m1, p] = %PRM[m1, p] * %RD[m1, p] : !einsum.tensor<[M1, P], f32>
// CHECK-NEXT:    %SLD = einsum.einsum SLD[m1, p] = %SLN[m1, m0, p] : !einsum.tensor<[M1, P], f32>
// CHECK-NEXT:    %RD = einsum.einsum RD[m1+1, p] = %SPD[m1, p] + %SLD[m1, p] init(0.0) : !einsum.tensor<[M1, P], f32>
// CHECK-NEXT:    %G = einsum.einsum G[p] = %RM[M1, p] + log(min(%RD[M1, p], 1.0)) : !einsum.tensor<[P], f32>
// CHECK-NEXT:    %L = einsum.einsum L[p] = log(%RD[M1, p]) + %G[p] : !einsum.tensor<[P], f32>
// CHECK-NEXT:    einsum.return %L : !einsum.tensor<[P], f32>
// CHECK-NEXT:  }

// -----

// The max is of an expression, and G and D are outputs: G is the exact max, D the sum with the
// input's NaN on a fully masked row (RD / min(RD, 1)).
einsum.cascade @returned(%X: !einsum.tensor<[M, P], f32>) -> (!einsum.tensor<[P], f32>, !einsum.tensor<[P], f32>) ranks(M = 5, P = 2) {
  %G = einsum.einsum G[p] = (%X[m, p] * 2.0) :: max(m) : !einsum.tensor<[P], f32>
  %N = einsum.einsum N[m, p] = exp(%X[m, p] * 2.0 - %G[p]) : !einsum.tensor<[M, P], f32>
  %D = einsum.einsum D[p] = %N[m, p] : !einsum.tensor<[P], f32>
  einsum.return %G, %D : !einsum.tensor<[P], f32>, !einsum.tensor<[P], f32>
}

// CHECK-LABEL: einsum.cascade @returned(%X: !einsum.tensor<[M, P], f32>) -> (!einsum.tensor<[P], f32>, !einsum.tensor<[P], f32>) ranks(M = 5, P = 2) {
// CHECK-NEXT:    %RM = einsum.einsum RM[m+1, p] = max(RM[m, p], %X[m, p] * 2.0) init(-3.4028235e+38) : !einsum.tensor<[M, P], f32>
// CHECK-NEXT:    %RD = einsum.einsum RD[m+1, p] = RD[m, p] * exp(%RM[m, p] - %RM[m+1, p]) + exp(%X[m, p] * 2.0 - %RM[m+1, p]) init(0.0) : !einsum.tensor<[M, P], f32>
// CHECK-NEXT:    %G = einsum.einsum G[p] = %RM[M, p] + log(min(%RD[M, p], 1.0)) : !einsum.tensor<[P], f32>
// CHECK-NEXT:    %D = einsum.einsum D[p] = %RD[M, p] / min(%RD[M, p], 1.0) : !einsum.tensor<[P], f32>
// CHECK-NEXT:    einsum.return %G, %D : !einsum.tensor<[P], f32>, !einsum.tensor<[P], f32>
// CHECK-NEXT:  }

// -----

// The sum lists its ranks in another order than the max (D[b, p], G[p, b]), the exponential is
// written inside the sum, and the value maximised is read through an Einsum (S) that the sum
// writes out.
einsum.cascade @layouts(%X: !einsum.tensor<[M, P, B], f32>, %W: !einsum.tensor<[M, B], f32>) -> !einsum.tensor<[M, P, B], f32> ranks(M = 6, P = 3, B = 2) {
  %S = einsum.einsum S[m, p, b] = %X[m, p, b] + %W[m, b] : !einsum.tensor<[M, P, B], f32>
  %G = einsum.einsum G[p, b] = %S[m, p, b] :: max(m) : !einsum.tensor<[P, B], f32>
  %D = einsum.einsum D[b, p] = exp(%X[m, p, b] + %W[m, b] - %G[p, b]) : !einsum.tensor<[B, P], f32>
  %A = einsum.einsum A[m, p, b] = exp(%S[m, p, b] - %G[p, b]) / %D[b, p] : !einsum.tensor<[M, P, B], f32>
  einsum.return %A : !einsum.tensor<[M, P, B], f32>
}

// CHECK-LABEL: einsum.cascade @layouts(%X: !einsum.tensor<[M, P, B], f32>, %W: !einsum.tensor<[M, B], f32>) -> !einsum.tensor<[M, P, B], f32> ranks(M = 6, P = 3, B = 2) {
// CHECK-NEXT:    %S = einsum.einsum S[m, p, b] = %X[m, p, b] + %W[m, b] : !einsum.tensor<[M, P, B], f32>
// CHECK-NEXT:    %RM = einsum.einsum RM[m+1, p, b] = max(RM[m, p, b], %S[m, p, b]) init(-3.4028235e+38) : !einsum.tensor<[M, P, B], f32>
// CHECK-NEXT:    %RD = einsum.einsum RD[m+1, p, b] = RD[m, p, b] * exp(%RM[m, p, b] - %RM[m+1, p, b]) + exp(%S[m, p, b] - %RM[m+1, p, b]) init(0.0) : !einsum.tensor<[M, P, B], f32>
// CHECK-NEXT:    %A = einsum.einsum A[m, p, b] = exp(%S[m, p, b] - %RM[M, p, b]) / %RD[M, p, b] : !einsum.tensor<[M, P, B], f32>
// CHECK-NEXT:    einsum.return %A : !einsum.tensor<[M, P, B], f32>
// CHECK-NEXT:  }

// -----

// A positive scale applied to the shift, exp((y - G) * c): the running form keeps it.
einsum.cascade @scaled(%X: !einsum.tensor<[M, P], f32>) -> !einsum.tensor<[M, P], f32> ranks(M = 6, P = 3) {
  %G = einsum.einsum G[p] = %X[m, p] :: max(m) : !einsum.tensor<[P], f32>
  %N = einsum.einsum N[m, p] = exp((%X[m, p] - %G[p]) * 0.125) : !einsum.tensor<[M, P], f32>
  %D = einsum.einsum D[p] = %N[m, p] : !einsum.tensor<[P], f32>
  %A = einsum.einsum A[m, p] = %N[m, p] / %D[p] : !einsum.tensor<[M, P], f32>
  einsum.return %A : !einsum.tensor<[M, P], f32>
}

// CHECK-LABEL: einsum.cascade @scaled(%X: !einsum.tensor<[M, P], f32>) -> !einsum.tensor<[M, P], f32> ranks(M = 6, P = 3) {
// CHECK-NEXT:    %RM = einsum.einsum RM[m+1, p] = max(RM[m, p], %X[m, p]) init(-3.4028235e+38) : !einsum.tensor<[M, P], f32>
// CHECK-NEXT:    %RD = einsum.einsum RD[m+1, p] = RD[m, p] * exp((%RM[m, p] - %RM[m+1, p]) * 0.125) + exp((%X[m, p] - %RM[m+1, p]) * 0.125) init(0.0) : !einsum.tensor<[M, P], f32>
// CHECK-NEXT:    %N = einsum.einsum N[m, p] = exp((%X[m, p] - %RM[M, p]) * 0.125) : !einsum.tensor<[M, P], f32>
// CHECK-NEXT:    %A = einsum.einsum A[m, p] = %N[m, p] / %RD[M, p] : !einsum.tensor<[M, P], f32>
// CHECK-NEXT:    einsum.return %A : !einsum.tensor<[M, P], f32>
// CHECK-NEXT:  }

// Nothing to merge: a remark naming what is missing on stderr, the cascade unchanged on stdout.
// RUN: einsum-opt %examples/matmul_chain.einsum -p fuse-max-sum 2>&1 | filecheck %s --check-prefix=NONE
// NONE-DAG: remark: fuse-max-sum: @matmul_chain: nothing to merge: no max-reduction (over one rank, or both levels of a split rank)
// NONE-DAG: %AB = einsum.einsum AB[m, n] = %A[m, k] * %B[k, n] : !einsum.tensor<[M, N], f32>
// NONE-DAG: %Z = einsum.einsum Z[m, l] = %AB[m, n] * %C[n, l] : !einsum.tensor<[M, L], f32>
