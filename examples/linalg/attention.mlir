// Attention written by hand in upstream MLIR (linalg on tensors), the 3-pass way: a row max
// over the keys, a sum of exponentials, then the normalised probabilities times V. Scaling by
// 1/sqrt(E) is folded into q. mlir-opt-22 reads it as it is; `einsum-opt -p linalg-to-einsum`
// imports it as a cascade (the `einsum.ranks` argument attributes name the ranks; without
// them they are called A, B, C, ...).
//   q: [E, P]  queries     k: [E, M]  keys     v: [F, M]  values     -> av: [F, P]
func.func @attention(%q: tensor<64x128xf32> {einsum.ranks = ["E", "P"]},
                     %k: tensor<64x512xf32> {einsum.ranks = ["E", "M"]},
                     %v: tensor<64x512xf32> {einsum.ranks = ["F", "M"]}) -> tensor<64x128xf32> {
  %zero = arith.constant 0.0 : f32
  %minus_inf = arith.constant 0xFF800000 : f32
  // qk[m, p] = sum_e q[e, p] * k[e, m]
  %qk_init = tensor.empty() : tensor<512x128xf32>
  %qk_zero = linalg.fill ins(%zero : f32) outs(%qk_init : tensor<512x128xf32>) -> tensor<512x128xf32>
  %qk = linalg.generic {
      indexing_maps = [affine_map<(m, p, e) -> (e, p)>, affine_map<(m, p, e) -> (e, m)>,
                       affine_map<(m, p, e) -> (m, p)>],
      iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%q, %k : tensor<64x128xf32>, tensor<64x512xf32>) outs(%qk_zero : tensor<512x128xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %prod = arith.mulf %a, %b : f32
    %sum = arith.addf %acc, %prod : f32
    linalg.yield %sum : f32
  } -> tensor<512x128xf32>
  // gm[p] = max_m qk[m, p]   (pass 1 over the keys)
  %row_init = tensor.empty() : tensor<128xf32>
  %gm_init = linalg.fill ins(%minus_inf : f32) outs(%row_init : tensor<128xf32>) -> tensor<128xf32>
  %gm = linalg.generic {
      indexing_maps = [affine_map<(p, m) -> (m, p)>, affine_map<(p, m) -> (p)>],
      iterator_types = ["parallel", "reduction"]}
      ins(%qk : tensor<512x128xf32>) outs(%gm_init : tensor<128xf32>) {
  ^bb0(%x: f32, %best: f32):
    %max = arith.maximumf %best, %x : f32
    linalg.yield %max : f32
  } -> tensor<128xf32>
  // sn[m, p] = exp(qk[m, p] - gm[p])   (pass 2)
  %sn = linalg.generic {
      indexing_maps = [affine_map<(m, p) -> (m, p)>, affine_map<(m, p) -> (p)>,
                       affine_map<(m, p) -> (m, p)>],
      iterator_types = ["parallel", "parallel"]}
      ins(%qk, %gm : tensor<512x128xf32>, tensor<128xf32>) outs(%qk_init : tensor<512x128xf32>) {
  ^bb0(%x: f32, %m: f32, %out: f32):
    %diff = arith.subf %x, %m : f32
    %e = math.exp %diff : f32
    linalg.yield %e : f32
  } -> tensor<512x128xf32>
  // sd[p] = sum_m sn[m, p]
  %sd_init = linalg.fill ins(%zero : f32) outs(%row_init : tensor<128xf32>) -> tensor<128xf32>
  %sd = linalg.generic {
      indexing_maps = [affine_map<(p, m) -> (m, p)>, affine_map<(p, m) -> (p)>],
      iterator_types = ["parallel", "reduction"]}
      ins(%sn : tensor<512x128xf32>) outs(%sd_init : tensor<128xf32>) {
  ^bb0(%x: f32, %acc: f32):
    %sum = arith.addf %acc, %x : f32
    linalg.yield %sum : f32
  } -> tensor<128xf32>
  // a[m, p] = sn[m, p] / sd[p]   (pass 3)
  %a = linalg.generic {
      indexing_maps = [affine_map<(m, p) -> (m, p)>, affine_map<(m, p) -> (p)>,
                       affine_map<(m, p) -> (m, p)>],
      iterator_types = ["parallel", "parallel"]}
      ins(%sn, %sd : tensor<512x128xf32>, tensor<128xf32>) outs(%qk_init : tensor<512x128xf32>) {
  ^bb0(%x: f32, %s: f32, %out: f32):
    %div = arith.divf %x, %s : f32
    linalg.yield %div : f32
  } -> tensor<512x128xf32>
  // av[f, p] = sum_m a[m, p] * v[f, m]
  %av_init = tensor.empty() : tensor<64x128xf32>
  %av_zero = linalg.fill ins(%zero : f32) outs(%av_init : tensor<64x128xf32>) -> tensor<64x128xf32>
  %av = linalg.generic {
      indexing_maps = [affine_map<(f, p, m) -> (m, p)>, affine_map<(f, p, m) -> (f, m)>,
                       affine_map<(f, p, m) -> (f, p)>],
      iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%a, %v : tensor<512x128xf32>, tensor<64x512xf32>) outs(%av_zero : tensor<64x128xf32>) {
  ^bb0(%x: f32, %y: f32, %acc: f32):
    %prod = arith.mulf %x, %y : f32
    %sum = arith.addf %acc, %prod : f32
    linalg.yield %sum : f32
  } -> tensor<64x128xf32>
  return %av : tensor<64x128xf32>
}
