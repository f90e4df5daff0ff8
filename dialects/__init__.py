"""einsum_opt.dialects"""
