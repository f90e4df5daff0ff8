"""einsum_opt.interpreters"""
