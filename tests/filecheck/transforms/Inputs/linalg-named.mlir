// Attention from named ops: o = softmax_rows(q * kt) * v + 0.5.
func.func @attention(%q: tensor<32x16xf32>, %kt: tensor<16x64xf32>, %v: tensor<64x8xf32>) -> tensor<32x8xf32> {
  %zero = arith.constant 0.0 : f32
  %half = arith.constant 0.5 : f32
  %s0 = tensor.empty() : tensor<32x64xf32>
  %sz = linalg.fill ins(%zero : f32) outs(%s0 : tensor<32x64xf32>) -> tensor<32x64xf32>
  %s = linalg.matmul ins(%q, %kt : tensor<32x16xf32>, tensor<16x64xf32>) outs(%sz : tensor<32x64xf32>) -> tensor<32x64xf32>
  %p = linalg.softmax dimension(1) ins(%s : tensor<32x64xf32>) outs(%s0 : tensor<32x64xf32>) -> tensor<32x64xf32>
  %o0 = tensor.empty() : tensor<32x8xf32>
  %bias = linalg.fill ins(%half : f32) outs(%o0 : tensor<32x8xf32>) -> tensor<32x8xf32>
  %o = linalg.matmul ins(%p, %v : tensor<32x64xf32>, tensor<64x8xf32>) outs(%bias : tensor<32x8xf32>) -> tensor<32x8xf32>
  return %o : tensor<32x8xf32>
}
