"""einsum-opt: Extended Einsum cascades, pass fusion and spatial-accelerator cost models on xDSL."""
