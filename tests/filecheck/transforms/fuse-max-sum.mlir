// fuse-max-sum: a full max G, an exp(y - G) and its sum D over the same rank become a running
// max RM and a running sum RD corrected by exp(old max - new max); reads of G and D read the
// final values RM[M, .] and RD[M, .].
// RUN: einsum-opt %s --split-input-file -p 'fuse-max-sum' | filecheck %s
// RUN: einsum-opt %s --split-input-file -p 'fuse-max-sum' --check-equivalence 2>&1 | filecheck %s --check-prefix=EQ
// RUN: einsum-opt %s --split-input-file -p 'fuse-max-sum,count-passes' | filecheck %s --check-prefix=PASSES

// EQ-DAG: check-equivalence: @lse L: {{.*}}: ok
// EQ-DAG: check-equivalence: @tiled L: {{.*}}: ok
// EQ-DAG: check-equivalence: @returned G: {{.*}}: ok
// EQ-DAG: check-equivalence: @returned D: {{.*}}: ok

// Unsplit: the per-element online form.
einsum.cascade @lse(%X: !einsum.tensor<[M, P], f32>) -> !einsum.tensor<[P], f32> ranks(M = 6, P = 3) {
  %G = einsum.einsum G[p] = %X[m, p] :: max(m) : !einsum.tensor<[P], f32>
  %N = einsum.einsum N[m, p] = exp(%X[m, p] - %G[p]) : !einsum.tensor<[M, P], f32>
  %D = einsum.einsum D[p] = %N[m, p] : !einsum.tensor<[P], f32>
  %L = einsum.einsum L[p] = log(%D[p]) + %G[p] : !einsum.tensor<[P], f32>
  einsum.return %L : !einsum.tensor<[P], f32>
}

// CHECK-LABEL: einsum.cascade @lse(%X: !einsum.tensor<[M, P], f32>) -> !einsum.tensor<[P], f32> ranks(M = 6, P = 3) {
// CHECK-NEXT:    %RM = einsum.einsum RM[m+1, p] = max(RM[m, p], %X[m, p]) init(-inf) : !einsum.tensor<[M, P], f32>
// CHECK-NEXT:    %RD = einsum.einsum RD[m+1, p] = RD[m, p] * exp(%RM[m, p] - %RM[m+1, p]) + exp(%X[m, p] - %RM[m+1, p]) init(0.0) : !einsum.tensor<[M, P], f32>
// CHECK-NEXT:    %L = einsum.einsum L[p] = log(%RD[M, p]) + %RM[M, p] : !einsum.tensor<[P], f32>
// CHECK-NEXT:    einsum.return %L : !einsum.tensor<[P], f32>
// CHECK-NEXT:  }

// PASSES: @lse({{.*}}passes = {M = 1 : i64, P = 1 : i64}}
// PASSES: @tiled({{.*}}passes = {P = 1 : i64, M0 = 2 : i64, M1 = 1 : i64}}
// PASSES: @returned({{.*}}passes = {M = 1 : i64, P = 1 : i64}}

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
// CHECK-NEXT:    %RM = einsum.einsum RM[m1+1, p] = max(RM[m1, p], %LM[m1, p]) init(-inf) : !einsum.tensor<[M1, P], f32>
// CHECK-NEXT:    %SLN = einsum.einsum SLN[m1, m0, p] = exp(%BX[m1, m0, p] - %RM[m1+1, p]) : !einsum.tensor<[M1, M0, P], f32>
// CHECK-NEXT:    %PRM = einsum.einsum PRM[m1, p] = exp(%RM[m1, p] - %RM[m1+1, p]) : !einsum.tensor<[M1, P], f32>
// CHECK-NEXT:    %SPD = einsum.einsum SPD[m1, p] = %PRM[m1, p] * %RD[m1, p] : !einsum.tensor<[M1, P], f32>
// CHECK-NEXT:    %SLD = einsum.einsum SLD[m1, p] = %SLN[m1, m0, p] : !einsum.tensor<[M1, P], f32>
// CHECK-NEXT:    %RD = einsum.einsum RD[m1+1, p] = %SPD[m1, p] + %SLD[m1, p] init(0.0) : !einsum.tensor<[M1, P], f32>
// CHECK-NEXT:    %L = einsum.einsum L[p] = log(%RD[M1, p]) + %RM[M1, p] : !einsum.tensor<[P], f32>
// CHECK-NEXT:    einsum.return %L : !einsum.tensor<[P], f32>
// CHECK-NEXT:  }

// -----

// The max is of an expression, and G and D are outputs: they become copies of the final values.
einsum.cascade @returned(%X: !einsum.tensor<[M, P], f32>) -> (!einsum.tensor<[P], f32>, !einsum.tensor<[P], f32>) ranks(M = 5, P = 2) {
  %G = einsum.einsum G[p] = (%X[m, p] * 2.0) :: max(m) : !einsum.tensor<[P], f32>
  %N = einsum.einsum N[m, p] = exp(%X[m, p] * 2.0 - %G[p]) : !einsum.tensor<[M, P], f32>
  %D = einsum.einsum D[p] = %N[m, p] : !einsum.tensor<[P], f32>
  einsum.return %G, %D : !einsum.tensor<[P], f32>, !einsum.tensor<[P], f32>
}

// CHECK-LABEL: einsum.cascade @returned(%X: !einsum.tensor<[M, P], f32>) -> (!einsum.tensor<[P], f32>, !einsum.tensor<[P], f32>) ranks(M = 5, P = 2) {
// CHECK-NEXT:    %RM = einsum.einsum RM[m+1, p] = max(RM[m, p], %X[m, p] * 2.0) init(-inf) : !einsum.tensor<[M, P], f32>
// CHECK-NEXT:    %RD = einsum.einsum RD[m+1, p] = RD[m, p] * exp(%RM[m, p] - %RM[m+1, p]) + exp(%X[m, p] * 2.0 - %RM[m+1, p]) init(0.0) : !einsum.tensor<[M, P], f32>
// CHECK-NEXT:    %G = einsum.einsum G[p] = %RM[M, p] : !einsum.tensor<[P], f32>
// CHECK-NEXT:    %D = einsum.einsum D[p] = %RD[M, p] : !einsum.tensor<[P], f32>
// CHECK-NEXT:    einsum.return %G, %D : !einsum.tensor<[P], f32>, !einsum.tensor<[P], f32>
// CHECK-NEXT:  }

// Nothing to merge: a remark on stderr, the cascade unchanged on stdout.
// RUN: einsum-opt %examples/matmul_chain.einsum -p fuse-max-sum 2>&1 | filecheck %s --check-prefix=NONE
// NONE-DAG: remark: fuse-max-sum: @matmul_chain: nothing to merge: no max-reduction feeds an exp(x - max) that is summed over the same rank
// NONE-DAG: %AB = einsum.einsum AB[m, n] = %A[m, k] * %B[k, n] : !einsum.tensor<[M, N], f32>
// NONE-DAG: %Z = einsum.einsum Z[m, l] = %AB[m, n] * %C[n, l] : !einsum.tensor<[M, L], f32>
