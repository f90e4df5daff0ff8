// split-rank{rank=M tile=4}: M becomes M1 x M0 in the rank table, every input with rank M is
// re-blocked by a B<name> Einsum, every use of m becomes m1, m0, and reductions over M reduce
// over both levels with the same operator.
// RUN: einsum-opt %s --split-input-file -p 'split-rank{rank=M tile=4}' | filecheck %s
// RUN: einsum-opt %s --split-input-file -p 'split-rank{rank=M tile=4}' --check-equivalence 2>&1 | filecheck %s --check-prefix=EQ

einsum.cascade @rowmax(%X: !einsum.tensor<[M, P], f32>, %W: !einsum.tensor<[M], f32>) -> !einsum.tensor<[P], f32> ranks(M = 8, P = 3) {
  %Y = einsum.einsum Y[m, p] = %X[m, p] * %W[m] : !einsum.tensor<[M, P], f32>
  %G = einsum.einsum G[p] = %Y[m, p] :: max(m) : !einsum.tensor<[P], f32>
  %S = einsum.einsum S[p] = %Y[m, p] - %G[p] : !einsum.tensor<[P], f32>
  einsum.return %S : !einsum.tensor<[P], f32>
}

// CHECK-LABEL: einsum.cascade @rowmax(%X: !einsum.tensor<[M, P], f32>, %W: !einsum.tensor<[M], f32>) -> !einsum.tensor<[P], f32> ranks(M = 8, P = 3, M0 = 4, M1 = M / M0) {
// CHECK-NEXT:    %BX = einsum.einsum BX[m1, m0, p] = %X[m1*M0+m0, p] : !einsum.tensor<[M1, M0, P], f32>
// CHECK-NEXT:    %BW = einsum.einsum BW[m1, m0] = %W[m1*M0+m0] : !einsum.tensor<[M1, M0], f32>
// CHECK-NEXT:    %Y = einsum.einsum Y[m1, m0, p] = %BX[m1, m0, p] * %BW[m1, m0] : !einsum.tensor<[M1, M0, P], f32>
// CHECK-NEXT:    %G = einsum.einsum G[p] = %Y[m1, m0, p] :: max(m1, m0) : !einsum.tensor<[P], f32>
// CHECK-NEXT:    %S = einsum.einsum S[p] = %Y[m1, m0, p] - %G[p] : !einsum.tensor<[P], f32>
// CHECK-NEXT:    einsum.return %S : !einsum.tensor<[P], f32>
// CHECK-NEXT:  }

// EQ-DAG: check-equivalence: @rowmax S: {{.*}}: ok
// EQ-DAG: check-equivalence: @transposed S: {{.*}}: ok
// EQ-DAG: check-equivalence: @assembled A: {{.*}}: ok
// EQ-DAG: check-equivalence: @assembled T: {{.*}}: ok
// EQ-DAG: check-equivalence: @taken S: {{.*}}: ok

// -----

// The split rank may sit anywhere in an input; a non-default reduce operator is kept per level.
einsum.cascade @transposed(%X: !einsum.tensor<[P, M], f32>) -> !einsum.tensor<[P], f32> ranks(M = 12, P = 2) {
  %T = einsum.einsum T[m, p] = exp(%X[p, m]) : !einsum.tensor<[M, P], f32>
  %S = einsum.einsum S[p] = %T[m, p] :: mul(m) : !einsum.tensor<[P], f32>
  einsum.return %S : !einsum.tensor<[P], f32>
}

// CHECK-LABEL: einsum.cascade @transposed(%X: !einsum.tensor<[P, M], f32>) -> !einsum.tensor<[P], f32> ranks(M = 12, P = 2, M0 = 4, M1 = M / M0) {
// CHECK-NEXT:    %BX = einsum.einsum BX[p, m1, m0] = %X[p, m1*M0+m0] : !einsum.tensor<[P, M1, M0], f32>
// CHECK-NEXT:    %T = einsum.einsum T[m1, m0, p] = exp(%BX[p, m1, m0]) : !einsum.tensor<[M1, M0, P], f32>
// CHECK-NEXT:    %S = einsum.einsum S[p] = %T[m1, m0, p] :: mul(m1, m0) : !einsum.tensor<[P], f32>
// CHECK-NEXT:    einsum.return %S : !einsum.tensor<[P], f32>
// CHECK-NEXT:  }

// Ranks that cannot be split: one error line naming the reason, exit 1, nothing on stdout.
// RUN: not einsum-opt %s --split-input-file -p 'split-rank{rank=M tile=3}' 2>&1 | filecheck %s --check-prefix=TILE
// TILE-NOT: einsum.cascade
// TILE: {{.*}}/split-rank.mlir:7:16: error: split-rank: @rowmax: tile 3 does not divide rank M of size 8 (a partial last tile would read past the end of the rank)
// TILE-NOT: einsum.cascade

// RUN: not einsum-opt %examples/attention/2pass.einsum -p 'split-rank{rank=M tile=256}' 2>&1 | filecheck %s --check-prefix=ITERATIVE
// ITERATIVE-NOT: einsum.cascade
// ITERATIVE: {{.*}}/2pass.einsum:13:1: error: split-rank: @attention: rank M is iterative in einsum RM
// ITERATIVE-NOT: einsum.cascade

// RUN: not einsum-opt %examples/attention/1pass.mlir -p 'split-rank{rank=M tile=4}' 2>&1 | filecheck %s --check-prefix=TWICE
// TWICE: {{.*}}/1pass.mlir:7:23: error: split-rank: @attention: einsum BK indexes rank M with 'm1*M0+m0'; only the plain index m can be split

// RUN: not einsum-opt %examples/attention/3pass.einsum -p 'split-rank{rank=Z tile=4}' 2>&1 | filecheck %s --check-prefix=UNDECLARED
// UNDECLARED: error: split-rank: no cascade declares rank Z

// -----

// A rank of a cascade output: the Einsum producing the output iterates the tiles and writes
// them in place (A[m1*M0+m0, p]), so A keeps its declared shape; Einsums reading A read it there.
einsum.cascade @assembled(%X: !einsum.tensor<[M, P], f32>) -> (!einsum.tensor<[M, P], f32>, !einsum.tensor<[P], f32>) ranks(M = 8, P = 3) {
  %G = einsum.einsum G[p] = %X[m, p] :: max(m) : !einsum.tensor<[P], f32>
  %A = einsum.einsum A[m, p] = %X[m, p] - %G[p] : !einsum.tensor<[M, P], f32>
  %T = einsum.einsum T[p] = %A[m, p] * %A[m, p] : !einsum.tensor<[P], f32>
  einsum.return %A, %T : !einsum.tensor<[M, P], f32>, !einsum.tensor<[P], f32>
}

// CHECK-LABEL: einsum.cascade @assembled(%X: !einsum.tensor<[M, P], f32>) -> (!einsum.tensor<[M, P], f32>, !einsum.tensor<[P], f32>) ranks(M = 8, P = 3, M0 = 4, M1 = M / M0) {
// CHECK-NEXT:    %BX = einsum.einsum BX[m1, m0, p] = %X[m1*M0+m0, p] : !einsum.tensor<[M1, M0, P], f32>
// CHECK-NEXT:    %G = einsum.einsum G[p] = %BX[m1, m0, p] :: max(m1, m0) : !einsum.tensor<[P], f32>
// CHECK-NEXT:    %A = einsum.einsum A[m1*M0+m0, p] = %BX[m1, m0, p] - %G[p] : !einsum.tensor<[M, P], f32>
// CHECK-NEXT:    %T = einsum.einsum T[p] = %A[m1*M0+m0, p] * %A[m1*M0+m0, p] : !einsum.tensor<[P], f32>
// CHECK-NEXT:    einsum.return %A, %T : !einsum.tensor<[M, P], f32>, !einsum.tensor<[P], f32>
// CHECK-NEXT:  }

// -----

// M1 and M0 are already taken by other ranks: the levels are M3 x M2.
einsum.cascade @taken(%X: !einsum.tensor<[M, M1, M0], f32>) -> !einsum.tensor<[M1], f32> ranks(M = 8, M1 = 2, M0 = 3) {
  %S = einsum.einsum S[m1] = %X[m, m1, m0] : !einsum.tensor<[M1], f32>
  einsum.return %S : !einsum.tensor<[M1], f32>
}

// CHECK-LABEL: einsum.cascade @taken(%X: !einsum.tensor<[M, M1, M0], f32>) -> !einsum.tensor<[M1], f32> ranks(M = 8, M1 = 2, M0 = 3, M2 = 4, M3 = M / M2) {
// CHECK-NEXT:    %BX = einsum.einsum BX[m3, m2, m1, m0] = %X[m3*M2+m2, m1, m0] : !einsum.tensor<[M3, M2, M1, M0], f32>
// CHECK-NEXT:    %S = einsum.einsum S[m1] = %BX[m3, m2, m1, m0] : !einsum.tensor<[M1], f32>
// CHECK-NEXT:    einsum.return %S : !einsum.tensor<[M1], f32>
// CHECK-NEXT:  }
