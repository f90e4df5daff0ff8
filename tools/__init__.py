"""einsum_opt.tools"""
