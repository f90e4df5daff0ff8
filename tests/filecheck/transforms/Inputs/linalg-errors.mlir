// expected-error @unknown {{linalg-to-einsum: @floordiv: linalg.generic: index (d0 floordiv 2) is not a sum}}
func.func @floordiv(%x: tensor<8xf32>) -> tensor<4xf32> {
  %e = tensor.empty() : tensor<4xf32>
  %y = linalg.generic {indexing_maps = [affine_map<(d0) -> (d0 floordiv 2)>, affine_map<(d0) -> (d0)>], iterator_types = ["parallel"]} ins(%x : tensor<8xf32>) outs(%e : tensor<4xf32>) {
  ^bb0(%a: f32, %o: f32):
    linalg.yield %a : f32
  } -> tensor<4xf32>
  return %y : tensor<4xf32>
}

// -----
// expected-error @unknown {{linalg-to-einsum: @select: linalg.generic: arith.cmpf has no Extended Einsum form (known: arith and math ops on scalars: add, sub, mul, div, max, min, neg, exp, log, sqrt, abs)}}
func.func @select(%x: tensor<8xf32>) -> tensor<8xf32> {
  %zero = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<8xf32>
  %y = linalg.generic {indexing_maps = [affine_map<(d0) -> (d0)>, affine_map<(d0) -> (d0)>], iterator_types = ["parallel"]} ins(%x : tensor<8xf32>) outs(%e : tensor<8xf32>) {
  ^bb0(%a: f32, %o: f32):
    %c = arith.cmpf ogt, %a, %zero : f32
    %r = arith.select %c, %a, %zero : f32
    linalg.yield %r : f32
  } -> tensor<8xf32>
  return %y : tensor<8xf32>
}

// -----
// expected-error @unknown {{linalg-to-einsum: @undefined: the initial value of s reads a tensor.empty, whose values are undefined}}
func.func @undefined(%x: tensor<8xf32>) -> tensor<f32> {
  %e = tensor.empty() : tensor<f32>
  %s = linalg.generic {indexing_maps = [affine_map<(d0) -> (d0)>, affine_map<(d0) -> ()>], iterator_types = ["reduction"]} ins(%x : tensor<8xf32>) outs(%e : tensor<f32>) {
  ^bb0(%a: f32, %acc: f32):
    %r = arith.addf %acc, %a : f32
    linalg.yield %r : f32
  } -> tensor<f32>
  return %s : tensor<f32>
}

// -----
// expected-error @unknown {{linalg-to-einsum: @square: argument %a: its dimensions would both be rank A: some loop dimension indexes both (an Extended Einsum names every dimension by its rank, so a tensor cannot be read along one rank twice, as in A*A or A + transpose(A))}}
func.func @square(%a: tensor<4x4xf32>) -> tensor<4x4xf32> {
  %zero = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<4x4xf32>
  %z = linalg.fill ins(%zero : f32) outs(%e : tensor<4x4xf32>) -> tensor<4x4xf32>
  %sq = linalg.matmul ins(%a, %a : tensor<4x4xf32>, tensor<4x4xf32>) outs(%z : tensor<4x4xf32>) -> tensor<4x4xf32>
  return %sq : tensor<4x4xf32>
}

// -----
// expected-error @unknown {{linalg-to-einsum: @slice: tensor.extract_slice has no Extended Einsum form}}
func.func @slice(%x: tensor<8xf32>) -> tensor<4xf32> {
  %s = tensor.extract_slice %x[2] [4] [1] : tensor<8xf32> to tensor<4xf32>
  return %s : tensor<4xf32>
}

// -----
// expected-error @unknown {{linalg-to-einsum: @dynamic: argument %x: tensor tensor<?xf32> has a dynamic size (sizes must be static)}}
func.func @dynamic(%x: tensor<?xf32>) -> tensor<?xf32> {
  return %x : tensor<?xf32>
}

// -----
// expected-error @unknown {{linalg-to-einsum: @parallel_out: linalg.generic: output indexing map (d0, d1) -> (d0) must use every parallel dimension once}}
func.func @parallel_out(%x: tensor<4x8xf32>) -> tensor<4xf32> {
  %e = tensor.empty() : tensor<4xf32>
  %y = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>, affine_map<(d0, d1) -> (d0)>], iterator_types = ["parallel", "parallel"]} ins(%x : tensor<4x8xf32>) outs(%e : tensor<4xf32>) {
  ^bb0(%a: f32, %o: f32):
    linalg.yield %a : f32
  } -> tensor<4xf32>
  return %y : tensor<4xf32>
}

// -----
// expected-error @unknown {{linalg-to-einsum: @twodims: linalg.generic: a body that does not yield op(out, value) with op one of add, mul, max, min and value reading inputs only must reduce exactly one dimension (it is then a recurrence over it)}}
func.func @twodims(%x: tensor<4x8xf32>, %init: tensor<f32>) -> tensor<f32> {
  %s = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>, affine_map<(d0, d1) -> ()>], iterator_types = ["reduction", "reduction"]} ins(%x : tensor<4x8xf32>) outs(%init : tensor<f32>) {
  ^bb0(%a: f32, %acc: f32):
    %h = arith.mulf %acc, %a : f32
    %r = arith.addf %h, %a : f32
    linalg.yield %r : f32
  } -> tensor<f32>
  return %s : tensor<f32>
}

// -----
// expected-error @unknown {{linalg-to-einsum: @unfilled: linalg.generic: the initial value of s must be a linalg.fill of a constant (it starts a recurrence over the reduced rank)}}
func.func @unfilled(%x: tensor<8xf32>, %init: tensor<f32>) -> tensor<f32> {
  %s = linalg.generic {indexing_maps = [affine_map<(d0) -> (d0)>, affine_map<(d0) -> ()>], iterator_types = ["reduction"]} ins(%x : tensor<8xf32>) outs(%init : tensor<f32>) {
  ^bb0(%a: f32, %acc: f32):
    %h = arith.mulf %acc, %a : f32
    %r = arith.addf %h, %a : f32
    linalg.yield %r : f32
  } -> tensor<f32>
  return %s : tensor<f32>
}
