// RUN: einsum-opt %s --split-input-file --verify-diagnostics
// The places (line and column) of some diagnostics, with the annotations switched off:
// RUN: sed 's/expected-error/unchecked-error/' %s | not einsum-opt --split-input-file --verify-diagnostics 2>&1 | filecheck %s --check-prefix=COLUMN
// Each chunk is rejected with a message naming the einsum or cascade at fault.

einsum.cascade @c(%X: !einsum.tensor<[M, P], f32>) -> !einsum.tensor<[N], f32> ranks(M = 4, P = 4) {
  // expected-error @+1 {{einsum S: rank N is not declared in cascade @c ranks(M = 4, P = 4)}}
  %S = einsum.einsum S[n] = %X[m, p] : !einsum.tensor<[N], f32>
  einsum.return %S : !einsum.tensor<[N], f32>
}

// -----

// expected-error @+1 {{rank M declared twice, with sizes 4 and 8}}
einsum.cascade @c(%X: !einsum.tensor<[M], f32>) -> !einsum.tensor<[M], f32> ranks(M = 4, M = 8) {
  einsum.return %X : !einsum.tensor<[M], f32>
}

// -----

einsum.cascade @c(%X: !einsum.tensor<[M, P], f32>) -> !einsum.tensor<[M], f32> ranks(M = 4, P = 4) {
  // expected-error @+1 {{einsum S: output rank M is not iterated: its index is 'p', expected 'm' (or 'm+1' for an iterative rank, or 'm1*M0+m0' over the tiles of a split rank)}}
  %S = einsum.einsum S[p] = %X[m, p] :: max(m) : !einsum.tensor<[M], f32>
  einsum.return %S : !einsum.tensor<[M], f32>
}

// -----

// An output assembled from tiles needs the split declared in the rank table...
einsum.cascade @c(%X: !einsum.tensor<[M1, M0], f32>) -> !einsum.tensor<[M], f32> ranks(M = 8, M0 = 4, M1 = 2) {
  // expected-error @+1 {{einsum S: output index m1*M0+m0 assembles rank M from tiles, but the cascade does not declare M1 = M / M0}}
  %S = einsum.einsum S[m1*M0+m0] = %X[m1, m0] : !einsum.tensor<[M], f32>
  einsum.return %S : !einsum.tensor<[M], f32>
}

// -----

// ... and tiles that cover the rank exactly.
einsum.cascade @c(%X: !einsum.tensor<[M1, M0], f32>) -> !einsum.tensor<[M], f32> ranks(M = 10, M0 = 4, M1 = M / M0) {
  // expected-error @+1 {{einsum S: output index m1*M0+m0 assembles rank M of size 10 from tiles of 4, which do not divide it}}
  %S = einsum.einsum S[m1*M0+m0] = %X[m1, m0] : !einsum.tensor<[M], f32>
  einsum.return %S : !einsum.tensor<[M], f32>
}

// -----

einsum.cascade @c(%X: !einsum.tensor<[M, P], f32>) -> !einsum.tensor<[P], f32> ranks(M = 4, P = 4) {
  %S = einsum.einsum S[p] = %X[p] : !einsum.tensor<[P], f32>
  // expected-error @above {{einsum S: access X[p] has 1 indices but X has 2 ranks [M, P]}}
  einsum.return %S : !einsum.tensor<[P], f32>
}

// -----

einsum.cascade @c(%X: !einsum.tensor<[M, P], f32>) -> !einsum.tensor<[P], f32> ranks(M = 4, P = 4) {
  // expected-error @+1 {{einsum S: reduce operator on rank P, which is not reduced}}
  %S = einsum.einsum S[p] = %X[m, p] :: max(p) : !einsum.tensor<[P], f32>
// COLUMN: <stdin>:[[# @LINE - 1]]:45: error: unexpected error: einsum S: reduce operator on rank P, which is not reduced
  einsum.return %S : !einsum.tensor<[P], f32>
}

// -----

// expected-error @+1 {{einsum S: reduce operator on rank P, which is not reduced (it is an output rank)}}
einsum.cascade @c(%X: !einsum.tensor<[M, P], f32>) -> !einsum.tensor<[P], f32> ranks(M = 4, P = 4) {
  %S = "einsum.einsum"(%X) <{tensor = "S", output = #einsum.indices<[p]>, access = [#einsum.indices<[m, p]>], self_reads = array<i64>, reduce = #einsum.reduce<m = max, p = add>, merge = #einsum<merge intersect>}> ({
  ^bb0(%0: f32):
    "einsum.yield"(%0) : (f32) -> ()
  }) : (!einsum.tensor<[M, P], f32>) -> !einsum.tensor<[P], f32>
  einsum.return %S : !einsum.tensor<[P], f32>
}

// -----

// expected-error @+1 {{einsum S: reduced rank M has no reduce operator}}
einsum.cascade @c(%X: !einsum.tensor<[M, P], f32>) -> !einsum.tensor<[P], f32> ranks(M = 4, P = 4) {
  %S = "einsum.einsum"(%X) <{tensor = "S", output = #einsum.indices<[p]>, access = [#einsum.indices<[m, p]>], self_reads = array<i64>, reduce = #einsum.reduce<>, merge = #einsum<merge intersect>}> ({
  ^bb0(%0: f32):
    "einsum.yield"(%0) : (f32) -> ()
  }) : (!einsum.tensor<[M, P], f32>) -> !einsum.tensor<[P], f32>
  einsum.return %S : !einsum.tensor<[P], f32>
}

// -----

einsum.cascade @c(%X: !einsum.tensor<[M, P], f32>) -> !einsum.tensor<[M, P], f32> ranks(M = 4, P = 4) {
  // expected-error @+1 {{einsum R: iterative rank M has no initial value (declare R[m=0, ...] = value)}}
  %R = einsum.einsum R[m+1, p] = R[m, p] + %X[m, p] : !einsum.tensor<[M, P], f32>
  einsum.return %R : !einsum.tensor<[M, P], f32>
}

// -----

einsum.cascade @c(%X: !einsum.tensor<[M, P], f32>) -> !einsum.tensor<[M, P], f32> ranks(M = 4, P = 4) {
  // expected-error-re @+1 {{einsum {{[A-Z]+}}: has an initial value but no {{(iterative|running)}} rank}}
  %R = einsum.einsum R[m, p] = %X[m, p] init(0.0) : !einsum.tensor<[M, P], f32>
  einsum.return %R : !einsum.tensor<[M, P], f32>
}

// -----

einsum.cascade @c(%X: !einsum.tensor<[M, P], f32>) -> !einsum.tensor<[M, P], f32> ranks(M = 4, P = 4) {
  // expected-error @+1 {{einsum R: reads its own output but has no iterative rank (write it as R[..., r+1, ...])}}
  %R = einsum.einsum R[m, p] = R[m, p] + %X[m, p] : !einsum.tensor<[M, P], f32>
  einsum.return %R : !einsum.tensor<[M, P], f32>
}

// -----

einsum.cascade @c(%X: !einsum.tensor<[M, P], f32>) -> !einsum.tensor<[M, P], f32> ranks(M = 4, P = 4) {
  // expected-error @+1 {{einsum R: self read R[m+1, p] must read the previous value R[m, p]}}
  %R = einsum.einsum R[m+1, p] = R[m+1, p] + %X[m, p] init(0.0) : !einsum.tensor<[M, P], f32>
  einsum.return %R : !einsum.tensor<[M, P], f32>
}

// -----

einsum.cascade @c(%X: !einsum.tensor<[M, P], f32>) -> !einsum.tensor<[M, P], f32> ranks(M = 4, P = 4) {
  %A = einsum.einsum A[m, p] = %X[m, p] * 2.0 : !einsum.tensor<[M, P], f32>
  // expected-error @+1 {{cascade @c: tensor A is defined twice}}
  %B = einsum.einsum A[m, p] = %A[m, p] + 1.0 : !einsum.tensor<[M, P], f32>
  einsum.return %B : !einsum.tensor<[M, P], f32>
}

// -----

einsum.cascade @c(%X: !einsum.tensor<[M, P], f32>) -> !einsum.tensor<[M, P], f32> ranks(M = 4, P = 4) {
  // expected-error @+1 {{einsum A: index m+1 of X[m+1, p] ranges over [1, 4] but rank M has indices 0..3 (size 4)}}
  %A = einsum.einsum A[m, p] = %X[m+1, p] : !einsum.tensor<[M, P], f32>
  einsum.return %A : !einsum.tensor<[M, P], f32>
}

// -----

einsum.cascade @c(%X: !einsum.tensor<[M, P], f32>) -> !einsum.tensor<[M, P], f32> ranks(M = 4, P = 4) {
  // expected-error @+1 {{einsum A: reads B[m, p] before B is defined; only the previous value of an iterative rank that this einsum also iterates may be read ahead}}
  %A = einsum.einsum A[m, p] = %X[m, p] * %B[m, p] : !einsum.tensor<[M, P], f32>
  %B = einsum.einsum B[m, p] = %X[m, p] + 1.0 : !einsum.tensor<[M, P], f32>
  einsum.return %A : !einsum.tensor<[M, P], f32>
}

// -----

einsum.cascade @c(%X: !einsum.tensor<[M, P], f32>) -> !einsum.tensor<[P], f32> ranks(M = 4, P = 4) {
  // expected-error @+1 {{unknown reduce operator 'avg' (known: add, mul, max, min)}}
  %S = einsum.einsum S[p] = %X[m, p] :: avg(m) : !einsum.tensor<[P], f32>
// COLUMN: <stdin>:[[# @LINE - 1]]:41: error: unexpected error: unknown reduce operator 'avg'
  einsum.return %S : !einsum.tensor<[P], f32>
}

// -----

einsum.cascade @c(%X: !einsum.tensor<[M, P], f32>) -> !einsum.tensor<[M, P], f32> ranks(M = 4, P = 4) {
  // expected-error @+1 {{unknown function 'tanh' (known: exp, log, sqrt, abs, max, min)}}
  %S = einsum.einsum S[m, p] = tanh(%X[m, p]) : !einsum.tensor<[M, P], f32>
  einsum.return %S : !einsum.tensor<[M, P], f32>
}

// -----

// expected-error @+1 {{rank name 'm' must start with an upper-case letter (its index variable is the lower-case name)}}
einsum.cascade @c(%X: !einsum.tensor<[m], f32>) -> !einsum.tensor<[m], f32> ranks(M = 4) {
  einsum.return %X : !einsum.tensor<[m], f32>
}

// -----

// expected-error @+1 {{cascade @c returns (!einsum.tensor<[M, P], f32>) but declares (!einsum.tensor<[P], f32>)}}
einsum.cascade @c(%X: !einsum.tensor<[M, P], f32>) -> !einsum.tensor<[P], f32> ranks(M = 4, P = 4) {
  einsum.return %X : !einsum.tensor<[M, P], f32>
}

// -----

// expected-error @+1 {{rank M1 = M / M0 refers to undeclared rank M0}}
einsum.cascade @c(%X: !einsum.tensor<[M], f32>) -> !einsum.tensor<[M], f32> ranks(M = 8, M1 = M / M0) {
  einsum.return %X : !einsum.tensor<[M], f32>
}

// -----

einsum.cascade @c(%X: !einsum.tensor<[M], i32>) -> !einsum.tensor<[M], i32> ranks(M = 4) {
  // expected-error @+1 {{einsum S: exp is not defined on i32}}
  %S = einsum.einsum S[m] = exp(%X[m]) : !einsum.tensor<[M], i32>
// COLUMN: <stdin>:[[# @LINE - 1]]:22: error: unexpected error: einsum S: exp is not defined on i32
  einsum.return %S : !einsum.tensor<[M], i32>
}

// -----

einsum.cascade @c(%X: !einsum.tensor<[M], f32>) -> !einsum.tensor<[M], f32> ranks(M = 4) {
  %S = einsum.einsum S[m] = %X[m] * %Y[m] : !einsum.tensor<[M], f32>
  einsum.return %S : !einsum.tensor<[M], f32>
}
// expected-error @+1 {{values used but not defined: [%Y]}}
