// RUN: einsum-opt %s --split-input-file --verify-diagnostics -p 'pass-fusion{rank=M tile=2}'
// The places (line and column, counted from the top of this file), with the annotations off:
// RUN: sed 's/expected-error/unchecked-error/' %s | not einsum-opt --split-input-file --verify-diagnostics -p 'pass-fusion{rank=M tile=2}' 2>&1 | filecheck %s --check-prefix=COLUMN
// Without --verify-diagnostics a chunk's failure is the one `error:` line, at its place:
// RUN: not einsum-opt %s --split-input-file -p 'pass-fusion{rank=M tile=2}' 2>&1 | filecheck %s --check-prefix=FIRST
// A later chunk's failure is at its line in the file (the first chunk's tile made to divide):
// RUN: sed 's/ranks(M = 5, P = 3)/ranks(M = 4, P = 3)/' %s | not einsum-opt --split-input-file -p 'pass-fusion{rank=M tile=2}' 2>&1 | filecheck %s --check-prefix=LATER
// A pass failure is reported at the op it is about: the cascade whose rank a tile does not
// divide, the Einsum that keeps a rank from being split (pass-fusion splits a copy of the
// cascade: the copy's ops are at the places of the ops they copy).

// expected-error @+1 {{pass-fusion: @odd: tile 2 does not divide rank M of size 5 (a partial last tile would read past the end of the rank)}}
einsum.cascade @odd(%X: !einsum.tensor<[M, P], f32>) -> !einsum.tensor<[P], f32> ranks(M = 5, P = 3) {
// COLUMN: <stdin>:[[# @LINE - 1]]:16: error: unexpected error: pass-fusion: @odd: tile 2 does not divide rank M
// FIRST: {{.*}}pass-locations.mlir:[[# @LINE - 2]]:16: error: pass-fusion: @odd: tile 2 does not divide rank M of size 5 (a partial last tile would read past the end of the rank){{$}}
// FIRST-NOT: error
  %G = einsum.einsum G[p] = %X[m, p] :: max(m) : !einsum.tensor<[P], f32>
  einsum.return %G : !einsum.tensor<[P], f32>
}

// -----

// A running value over M: M cannot be split.
einsum.cascade @running(%X: !einsum.tensor<[M, P], f32>) -> !einsum.tensor<[M, P], f32> ranks(M = 4, P = 3) {
  %S = einsum.einsum S[m, p] = exp(%X[m, p]) : !einsum.tensor<[M, P], f32>
  // expected-error @+1 {{pass-fusion: @running: rank M is iterative in einsum R}}
  %R = einsum.einsum R[m+1, p] = max(R[m, p], %S[m, p]) init(-3.4028235e+38) : !einsum.tensor<[M, P], f32>
// COLUMN: <stdin>:[[# @LINE - 1]]:22: error: unexpected error: pass-fusion: @running: rank M is iterative in einsum R
// LATER: <stdin>:[[# @LINE - 2]]:22: error: pass-fusion: @running: rank M is iterative in einsum R{{$}}
  einsum.return %R : !einsum.tensor<[M, P], f32>
}

// -----

// B reads M in tiles already: only a plain index can be split.
einsum.cascade @blocked(%K: !einsum.tensor<[M], f32>) -> !einsum.tensor<[M1, M0], f32> ranks(M = 8, M0 = 4, M1 = M / M0) {
  %A = einsum.einsum A[m] = exp(%K[m]) : !einsum.tensor<[M], f32>
  // expected-error @+1 {{pass-fusion: @blocked: einsum B indexes rank M with 'm1*M0+m0'; only the plain index m can be split}}
  %B = einsum.einsum B[m1, m0] = %A[m1*M0+m0] : !einsum.tensor<[M1, M0], f32>
// COLUMN: <stdin>:[[# @LINE - 1]]:22: error: unexpected error: pass-fusion: @blocked: einsum B indexes rank M
  einsum.return %B : !einsum.tensor<[M1, M0], f32>
}
