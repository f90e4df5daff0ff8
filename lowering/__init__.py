"""einsum_opt.lowering"""
