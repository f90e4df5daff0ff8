// RUN: EINSUM_ROUNDTRIP
// RUN: einsum-opt %s --split-input-file | einsum-opt --split-input-file | filecheck %s
// RUN: einsum-opt %s --split-input-file --print-op-generic | filecheck %s --check-prefix=GENERIC

// Every form of an Einsum: plain products (reduced with +), other reduce operators, constants,
// functions, a value used twice (one access), an iterative rank with a self read and initial value, final-value reads, affine
// indices, a read ahead of a later iterative einsum, and a map that is not an expression.

einsum.cascade @forms(%X: !einsum.tensor<[M, P], f32>, %W: !einsum.tensor<[K, M], f16>) -> (!einsum.tensor<[K, P], f32>, !einsum.tensor<[P], f32>) ranks(K = 3, M = 8, P = 5, M0 = 4, M1 = M / M0) {
  %Y = einsum.einsum Y[k, p] = %W[k, m] * %X[m, p] : !einsum.tensor<[K, P], f32>
  %G = einsum.einsum G[p] = %X[m, p] :: max(m) : !einsum.tensor<[P], f32>
  %N = einsum.einsum N[m, p] = -(%X[m, p] - %G[p]) / 2.5 + sqrt(abs(%X[m, p])) * %X[m, p] : !einsum.tensor<[M, P], f32>
  %B = einsum.einsum B[m1, m0, p] = %X[m1*M0+m0, p] : !einsum.tensor<[M1, M0, P], f32>
  %L = einsum.einsum L[m1, p] = %B[m1, m0, p] :: min(m0) : !einsum.tensor<[M1, P], f32>
  %T = einsum.einsum T[m1, p] = %L[m1, p] * %R[m1, p] : !einsum.tensor<[M1, P], f32>
  %R = einsum.einsum R[m1+1, p] = max(R[m1, p], %T[m1, p] - log(%L[m1, p])) init(-inf) merge(union) : !einsum.tensor<[M1, P], f32>
  %F = einsum.einsum F[p] = %R[M1, p] + 1.0e-03 : !einsum.tensor<[P], f32>
  %Z = einsum.einsum Z[p] = map(%F[p], %G[p]) {
  ^bb0(%a: f32, %b: f32):
    %s = arith.addf %a, %b : f32
    %m = arith.mulf %s, %s : f32
    %t = math.tanh %m : f32
    einsum.yield %t : f32
  } : !einsum.tensor<[P], f32>
  einsum.return %Y, %Z : !einsum.tensor<[K, P], f32>, !einsum.tensor<[P], f32>
}

// CHECK-LABEL: einsum.cascade @forms(%X: !einsum.tensor<[M, P], f32>, %W: !einsum.tensor<[K, M], f16>) -> (!einsum.tensor<[K, P], f32>, !einsum.tensor<[P], f32>) ranks(K = 3, M = 8, P = 5, M0 = 4, M1 = M / M0) {
// CHECK-NEXT:    %Y = einsum.einsum Y[k, p] = %W[k, m] * %X[m, p] : !einsum.tensor<[K, P], f32>
// CHECK-NEXT:    %G = einsum.einsum G[p] = %X[m, p] :: max(m) : !einsum.tensor<[P], f32>
// CHECK-NEXT:    %N = einsum.einsum N[m, p] = -(%X[m, p] - %G[p]) / 2.5 + sqrt(abs(%X[m, p])) * %X[m, p] : !einsum.tensor<[M, P], f32>
// CHECK-NEXT:    %B = einsum.einsum B[m1, m0, p] = %X[m1*M0+m0, p] : !einsum.tensor<[M1, M0, P], f32>
// CHECK-NEXT:    %L = einsum.einsum L[m1, p] = %B[m1, m0, p] :: min(m0) : !einsum.tensor<[M1, P], f32>
// CHECK-NEXT:    %T = einsum.einsum T[m1, p] = %L[m1, p] * %R[m1, p] : !einsum.tensor<[M1, P], f32>
// CHECK-NEXT:    %R = einsum.einsum R[m1+1, p] = max(R[m1, p], %T[m1, p] - log(%L[m1, p])) init(-inf) merge(union) : !einsum.tensor<[M1, P], f32>
// CHECK-NEXT:    %F = einsum.einsum F[p] = %R[M1, p] + 0.001 : !einsum.tensor<[P], f32>
// CHECK-NEXT:    %Z = einsum.einsum Z[p] = map(%F[p], %G[p]) {
// CHECK-NEXT:    ^{{.*}}(%{{.*}}: f32, %{{.*}}: f32):
// CHECK-NEXT:      %{{.*}} = arith.addf
// CHECK-NEXT:      %{{.*}} = arith.mulf
// CHECK-NEXT:      %{{.*}} = math.tanh
// CHECK-NEXT:      einsum.yield %{{.*}} : f32
// CHECK-NEXT:    } : !einsum.tensor<[P], f32>
// CHECK-NEXT:    einsum.return %Y, %Z : !einsum.tensor<[K, P], f32>, !einsum.tensor<[P], f32>
// CHECK-NEXT:  }

// GENERIC:      "einsum.cascade"() <{sym_name = "forms", {{.*}}ranks = #einsum.ranks<K = 3, M = 8, P = 5, M0 = 4, M1 = M / M0>, input_names = ["X", "W"]}>
// GENERIC:      %Y = "einsum.einsum"(%W, %X) <{tensor = "Y", output = #einsum.indices<[k, p]>, access = [#einsum.indices<[k, m]>, #einsum.indices<[m, p]>], self_reads = array<i64>, reduce = #einsum.reduce<m = add>, merge = #einsum<merge intersect>}>
// GENERIC:        "arith.extf"
// GENERIC:      %R = "einsum.einsum"(%T, %L) <{tensor = "R", output = #einsum.indices<[m1+1, p]>, access = [#einsum.indices<[m1, p]>, #einsum.indices<[m1, p]>, #einsum.indices<[m1, p]>], self_reads = array<i64: 0>, reduce = #einsum.reduce<>, merge = #einsum<merge union>, init = 0xff800000 : f32}>
