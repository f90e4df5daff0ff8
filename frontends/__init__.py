"""einsum_opt.frontends"""
