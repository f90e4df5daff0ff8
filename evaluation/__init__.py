"""The FuseMax evaluation: unfused, FLAT, the ablation steps and FuseMax over the reference
workloads, every number from the cost model run on compiled IR (`einsum-eval`)."""
