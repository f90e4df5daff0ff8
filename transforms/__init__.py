"""einsum_opt.transforms"""
