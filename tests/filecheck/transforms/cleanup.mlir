// cleanup: Einsums whose values reach no output are removed and a plain copy (same ranks, read
// at its own output indices) is replaced by its source; copies that re-block, transpose or are
// returned stay. Einsums computing the same value from the same reads are merged (CSE), and
// scalar factors move out of sums.
// RUN: einsum-opt %s --split-input-file -p cleanup | filecheck %s
// RUN: einsum-opt %s --split-input-file -p cleanup --check-equivalence 2>&1 | filecheck %s --check-prefix=EQ

// EQ-DAG: check-equivalence: @copies S: {{.*}}: ok
// EQ-DAG: check-equivalence: @copies OUT: {{.*}}: ok
// EQ-DAG: check-equivalence: @chain Z: {{.*}}: ok
// EQ-DAG: check-equivalence: @common Y: {{.*}}: ok
// EQ-DAG: check-equivalence: @common E2: {{.*}}: ok
// EQ-DAG: check-equivalence: @scales QK: {{.*}}: ok
// EQ-DAG: check-equivalence: @scales MU: {{.*}}: ok
// EQ-DAG: check-equivalence: @scales C: {{.*}}: ok

einsum.cascade @copies(%X: !einsum.tensor<[M, P], f32>) -> (!einsum.tensor<[P], f32>, !einsum.tensor<[M, P], f32>) ranks(M = 8, P = 3, M0 = 4, M1 = M / M0) {
  %C = einsum.einsum C[m, p] = %X[m, p] : !einsum.tensor<[M, P], f32>
  %BX = einsum.einsum BX[m1, m0, p] = %X[m1*M0+m0, p] : !einsum.tensor<[M1, M0, P], f32>
  %TR = einsum.einsum TR[p, m] = %X[m, p] : !einsum.tensor<[P, M], f32>
  %DEAD = einsum.einsum DEAD[p] = %C[m, p] :: max(m) : !einsum.tensor<[P], f32>
  %S = einsum.einsum S[p] = %C[m, p] * %TR[p, m] + %BX[m1, m0, p] : !einsum.tensor<[P], f32>
  %OUT = einsum.einsum OUT[m, p] = %C[m, p] : !einsum.tensor<[M, P], f32>
  einsum.return %S, %OUT : !einsum.tensor<[P], f32>, !einsum.tensor<[M, P], f32>
}

// CHECK-LABEL: einsum.cascade @copies(
// CHECK-NEXT:    %BX = einsum.einsum BX[m1, m0, p] = %X[m1*M0+m0, p] : !einsum.tensor<[M1, M0, P], f32>
// CHECK-NEXT:    %TR = einsum.einsum TR[p, m] = %X[m, p] : !einsum.tensor<[P, M], f32>
// CHECK-NEXT:    %S = einsum.einsum S[p] = %X[m, p] * %TR[p, m] + %BX[m1, m0, p] : !einsum.tensor<[P], f32>
// CHECK-NEXT:    %OUT = einsum.einsum OUT[m, p] = %X[m, p] : !einsum.tensor<[M, P], f32>
// CHECK-NEXT:    einsum.return %S, %OUT : !einsum.tensor<[P], f32>, !einsum.tensor<[M, P], f32>
// CHECK-NEXT:  }

// -----

// A dead chain goes as a whole; a copy of an intermediate is forwarded; a copy that widens
// the element type is not a plain copy and stays.
einsum.cascade @chain(%A: !einsum.tensor<[M, K], f32>, %B: !einsum.tensor<[K, N], f32>, %W: !einsum.tensor<[M, N], f16>) -> !einsum.tensor<[M], f32> ranks(M = 4, K = 3, N = 2) {
  %AB = einsum.einsum AB[m, n] = %A[m, k] * %B[k, n] : !einsum.tensor<[M, N], f32>
  %CP = einsum.einsum CP[m, n] = %AB[m, n] : !einsum.tensor<[M, N], f32>
  %H = einsum.einsum H[m, n] = %W[m, n] : !einsum.tensor<[M, N], f32>
  %D1 = einsum.einsum D1[m] = %AB[m, n] :: max(n) : !einsum.tensor<[M], f32>
  %D2 = einsum.einsum D2[m] = exp(%D1[m]) : !einsum.tensor<[M], f32>
  %Z = einsum.einsum Z[m] = %CP[m, n] + %H[m, n] : !einsum.tensor<[M], f32>
  einsum.return %Z : !einsum.tensor<[M], f32>
}

// CHECK-LABEL: einsum.cascade @chain(
// CHECK-NEXT:    %AB = einsum.einsum AB[m, n] = %A[m, k] * %B[k, n] : !einsum.tensor<[M, N], f32>
// CHECK-NEXT:    %H = einsum.einsum H[m, n] = %W[m, n] : !einsum.tensor<[M, N], f32>
// CHECK-NEXT:    %Z = einsum.einsum Z[m] = %AB[m, n] + %H[m, n] : !einsum.tensor<[M], f32>
// CHECK-NEXT:    einsum.return %Z : !einsum.tensor<[M], f32>
// CHECK-NEXT:  }

// The 1-pass attention cascade has nothing to clean: BK and BV re-block K and V.
// RUN: einsum-opt %examples/attention/1pass.mlir -p cleanup | filecheck %s --check-prefix=ONE
// ONE:      %BK = einsum.einsum BK[e, m1, m0] = %K[e, m1*M0+m0] : !einsum.tensor<[E, M1, M0], f32>
// ONE-NEXT: %BV = einsum.einsum BV[f, m1, m0] = %V[f, m1*M0+m0] : !einsum.tensor<[F, M1, M0], f32>
// ONE-NEXT: %QK = einsum.einsum QK[m1, m0, p] = %Q[e, p] * %BK[e, m1, m0] : !einsum.tensor<[M1, M0, P], f32>

// -----

// The same exponential three times: through the Einsum S, written out, and in another rank
// order (ET). Each is computed once; the returned duplicate E2 becomes a copy.
einsum.cascade @common(%X: !einsum.tensor<[M, P], f32>, %B: !einsum.tensor<[M], f32>, %G: !einsum.tensor<[P], f32>) -> (!einsum.tensor<[P], f32>, !einsum.tensor<[M, P], f32>) ranks(M = 4, P = 3) {
  %S = einsum.einsum S[m, p] = %X[m, p] + %B[m] : !einsum.tensor<[M, P], f32>
  %E1 = einsum.einsum E1[m, p] = exp(%S[m, p] - %G[p]) : !einsum.tensor<[M, P], f32>
  %ET = einsum.einsum ET[p, m] = exp(%X[m, p] + %B[m] - %G[p]) : !einsum.tensor<[P, M], f32>
  %E2 = einsum.einsum E2[m, p] = exp(%X[m, p] + %B[m] - %G[p]) : !einsum.tensor<[M, P], f32>
  %Y = einsum.einsum Y[p] = %E1[m, p] * %ET[p, m] + %S[m, p] : !einsum.tensor<[P], f32>
  einsum.return %Y, %E2 : !einsum.tensor<[P], f32>, !einsum.tensor<[M, P], f32>
}

// CHECK-LABEL: einsum.cascade @common(%X: !einsum.tensor<[M, P], f32>, %B: !einsum.tensor<[M], f32>, %G: !einsum.tensor<[P], f32>) -> (!einsum.tensor<[P], f32>, !einsum.tensor<[M, P], f32>) ranks(M = 4, P = 3) {
// CHECK-NEXT:    %S = einsum.einsum S[m, p] = %X[m, p] + %B[m] : !einsum.tensor<[M, P], f32>
// CHECK-NEXT:    %E1 = einsum.einsum E1[m, p] = exp(%S[m, p] - %G[p]) : !einsum.tensor<[M, P], f32>
// CHECK-NEXT:    %E2 = einsum.einsum E2[m, p] = %E1[m, p] : !einsum.tensor<[M, P], f32>
// CHECK-NEXT:    %Y = einsum.einsum Y[p] = %E1[m, p] * %E1[m, p] + %S[m, p] : !einsum.tensor<[P], f32>
// CHECK-NEXT:    einsum.return %Y, %E2 : !einsum.tensor<[P], f32>, !einsum.tensor<[M, P], f32>
// CHECK-NEXT:  }

// -----

// Scalar factors of sums move out: a division and a square root per result, not per
// multiply-accumulate. An integer sum with a division is left alone (it does not commute with the sum).
einsum.cascade @scales(%Q: !einsum.tensor<[E, P], f32>, %K: !einsum.tensor<[E, M], f32>, %X: !einsum.tensor<[N, T], f32>, %I: !einsum.tensor<[N], i32>) -> (!einsum.tensor<[M, P], f32>, !einsum.tensor<[T], f32>, !einsum.tensor<[], i32>) ranks(E = 4, M = 3, P = 2, N = 5, T = 2) {
  %QK = einsum.einsum QK[m, p] = %Q[e, p] * %K[e, m] / sqrt(E) : !einsum.tensor<[M, P], f32>
  %MU = einsum.einsum MU[t] = 2.0 * %X[n, t] / N : !einsum.tensor<[T], f32>
  %C = einsum.einsum C[] = %I[n] * 3 / 2 : !einsum.tensor<[], i32>
  einsum.return %QK, %MU, %C : !einsum.tensor<[M, P], f32>, !einsum.tensor<[T], f32>, !einsum.tensor<[], i32>
}

// CHECK-LABEL: einsum.cascade @scales(%Q: !einsum.tensor<[E, P], f32>, %K: !einsum.tensor<[E, M], f32>, %X: !einsum.tensor<[N, T], f32>, %I: !einsum.tensor<[N], i32>) -> (!einsum.tensor<[M, P], f32>, !einsum.tensor<[T], f32>, !einsum.tensor<[], i32>) ranks(E = 4, M = 3, P = 2, N = 5, T = 2) {
// CHECK-NEXT:    %QKS = einsum.einsum QKS[m, p] = %Q[e, p] * %K[e, m] : !einsum.tensor<[M, P], f32>
// CHECK-NEXT:    %QK = einsum.einsum QK[m, p] = %QKS[m, p] / sqrt(E) : !einsum.tensor<[M, P], f32>
// CHECK-NEXT:    %MUS = einsum.einsum MUS[t] = %X[n, t] : !einsum.tensor<[T], f32>
// CHECK-NEXT:    %MU = einsum.einsum MU[t] = %MUS[t] * 2.0 / N : !einsum.tensor<[T], f32>
// CHECK-NEXT:    %C = einsum.einsum C[] = %I[n] * 3 / 2 : !einsum.tensor<[], i32>
// CHECK-NEXT:    einsum.return %QK, %MU, %C : !einsum.tensor<[M, P], f32>, !einsum.tensor<[T], f32>, !einsum.tensor<[], i32>
// CHECK-NEXT:  }
