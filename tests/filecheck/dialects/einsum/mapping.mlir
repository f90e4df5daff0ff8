// RUN: einsum-opt %s --split-input-file --verify-diagnostics | filecheck %s
// The #einsum.mapping attribute round-trips and is checked against its Einsum.

einsum.cascade @c(%X: !einsum.tensor<[M, P], f32>) -> !einsum.tensor<[P], f32> ranks(M = 8, P = 16) {
  %S = einsum.einsum S[p] = %X[m, p] {mapping = #einsum.mapping<unit = pe2d, loops = [P1, M, P0], partition = {P = [4]}, space = {P0 = 0}, storage = {X = DRAM, S = PE}>} : !einsum.tensor<[P], f32>
  einsum.return %S : !einsum.tensor<[P], f32>
}
// CHECK: {mapping = #einsum.mapping<unit = pe2d, loops = [P1, M, P0], partition = {P = [4]}, space = {P0 = 0}, storage = {X = DRAM, S = PE}>}

// -----

einsum.cascade @c(%X: !einsum.tensor<[M, P], f32>) -> !einsum.tensor<[P], f32> ranks(M = 8, P = 16) {
  // expected-error @+1 {{einsum S: loop order [P1, M] is not a permutation of its loop ranks [P1, P0, M]}}
  %S = einsum.einsum S[p] = %X[m, p] {mapping = #einsum.mapping<unit = pe2d, loops = [P1, M], partition = {P = [4]}>} : !einsum.tensor<[P], f32>
  einsum.return %S : !einsum.tensor<[P], f32>
}

// -----

einsum.cascade @c(%X: !einsum.tensor<[M, P], f32>) -> !einsum.tensor<[P], f32> ranks(M = 8, P = 16) {
  // expected-error @+1 {{einsum S: partition P = [5]: 5 does not divide 16}}
  %S = einsum.einsum S[p] = %X[m, p] {mapping = #einsum.mapping<unit = pe2d, partition = {P = [5]}>} : !einsum.tensor<[P], f32>
  einsum.return %S : !einsum.tensor<[P], f32>
}

// -----

einsum.cascade @c(%X: !einsum.tensor<[M, P], f32>) -> !einsum.tensor<[M, P], f32> ranks(M = 8, P = 16) {
  // expected-error @+1 {{einsum R: iterative rank M cannot be spatial (each step needs the previous)}}
  %R = einsum.einsum R[m+1, p] = R[m, p] + %X[m, p] init(0.0) {mapping = #einsum.mapping<unit = pe1d, space = {M = 0}>} : !einsum.tensor<[M, P], f32>
  einsum.return %R : !einsum.tensor<[M, P], f32>
}

// -----

einsum.cascade @c(%X: !einsum.tensor<[M, P], f32>) -> !einsum.tensor<[M, P], f32> ranks(M = 8, P = 16) {
  %R = einsum.einsum R[m+1, p] = R[m, p] + %X[m, p] init(0.0) : !einsum.tensor<[M, P], f32>
  // expected-error @+1 {{einsum S: spatial loop M would read R[...m+1...] before it is produced (the running value is computed one step at a time)}}
  %S = einsum.einsum S[m, p] = %R[m+1, p] * 2.0 {mapping = #einsum.mapping<unit = pe1d, space = {M = 0}>} : !einsum.tensor<[M, P], f32>
  einsum.return %S : !einsum.tensor<[M, P], f32>
}

// -----

einsum.cascade @c(%X: !einsum.tensor<[M, P], f32>) -> !einsum.tensor<[P], f32> ranks(M = 8, P = 16) {
  // expected-error @+1 {{einsum S: storage level given for Y, which it neither reads nor writes}}
  %S = einsum.einsum S[p] = %X[m, p] {mapping = #einsum.mapping<unit = pe2d, storage = {Y = GLB}>} : !einsum.tensor<[P], f32>
  einsum.return %S : !einsum.tensor<[P], f32>
}
