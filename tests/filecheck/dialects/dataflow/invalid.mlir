// RUN: einsum-opt %s --split-input-file --verify-diagnostics --parsing-diagnostics | filecheck %s

dataflow.program @p arch "fusemax" {
  dataflow.compute @QK on pe2d runs 0 times 64 ops {mac = 1} extent [256, 256]
}
// CHECK: compute @QK: runs must be positive, got 0

// -----

dataflow.program @p arch "fusemax" {
  dataflow.compute @QK on pe2d runs 1 times -2 ops {mac = 1} extent [256, 256]
}
// CHECK: compute @QK: times must be positive, got -2

// -----

dataflow.program @p arch "fusemax" {
  dataflow.repeat "b, h" count 0 {
  }
}
// CHECK: repeat "b, h": count must be positive, got 0

// -----

dataflow.program @p arch "fusemax" {
  dataflow.pipeline "m1" count -1 {
  }
}
// CHECK: pipeline "m1": count must be positive, got -1

// -----

dataflow.program @p arch "fusemax" {
  dataflow.compute @QK on pe2d runs 1 times 1 ops {mac = 1} extent [256, 0]
}
// CHECK: compute @QK: extent must be positive, got [256, 0]

// -----

dataflow.program @p arch "fusemax" {
  dataflow.compute @QK on pe2d runs 1 times 1 ops {fma = 1} extent [256]
}
// CHECK: compute @QK: unknown operation kind 'fma' (the kinds are mac, mul, add, max, exp, div, sqrt, log)

// -----

dataflow.program @p arch "fusemax" {
  dataflow.compute @QK on pe2d runs 1 times 1 ops {mac = 0} extent [256]
}
// CHECK: compute @QK: ops count of mac must be positive, got 0

// -----

dataflow.program @p arch "fusemax" {
  dataflow.compute @QK on pe2d runs 1 times 1 ops {} extent [256]
}
// CHECK: compute @QK: ops must list at least one operation

// -----

dataflow.program @p arch "fusemax" {
  dataflow.pipeline "m1" count 4 {
    dataflow.compute @QK on pe2d runs 5 times 1 ops {mac = 1} extent [256]
  }
}
// CHECK: compute @QK: runs 5 exceeds the enclosing pipeline's count 4

// -----

dataflow.program @p arch "fusemax" {
  dataflow.pipeline "m1" count 4 {
    dataflow.compute @QK on pe2d runs 4 times 1 ops {mac = 1} extent [256] after [@XX]
  }
}
// CHECK: compute @QK: after names @XX, which is not a compute stage of the same pipeline

// -----

dataflow.program @p arch "fusemax" {
  dataflow.compute @A on pe2d runs 4 times 1 ops {mac = 1} extent [256]
  dataflow.pipeline "m1" count 4 {
    dataflow.compute @QK on pe2d runs 4 times 1 ops {mac = 1} extent [256] carried [@A]
  }
}
// CHECK: compute @QK: carried names @A, which is not a compute stage of the same pipeline

// -----

dataflow.program @p arch "fusemax" {
  dataflow.compute @A on pe2d runs 4 times 1 ops {mac = 1} extent [256] after [@Z]
}
// CHECK: compute @A: after names @Z, which is not a compute stage of the same block

// -----

dataflow.program @p arch "fusemax" {
  dataflow.pipeline "m1" count 4 {
    dataflow.compute @A on pe2d runs 4 times 1 ops {mac = 1} extent [256] after [@C]
    dataflow.compute @B on pe2d runs 4 times 1 ops {mac = 1} extent [256] after [@A]
    dataflow.compute @C on pe2d runs 4 times 1 ops {mac = 1} extent [256] after [@B]
  }
}
// CHECK: pipeline "m1": the after dependencies form a cycle: @A -> @C -> @B -> @A

// -----

dataflow.program @p arch "fusemax" {
  dataflow.compute @A on pe2d runs 4 times 1 ops {mac = 1} extent [256] after [@A]
}
// CHECK: program @p: the after dependencies form a cycle: @A -> @A

// -----

dataflow.program @p arch "fusemax" {
  dataflow.compute @A on pe2d runs 4 times 1 ops {mac = 1} extent [256]
  dataflow.compute @A on pe1d runs 4 times 1 ops {mac = 1} extent [256]
}
// CHECK: program @p: two compute stages named @A in one block

// -----

dataflow.compute @A on pe2d runs 4 times 1 ops {mac = 1} extent [256]
// CHECK: compute @A: must be inside a dataflow.program

// -----

dataflow.repeat "b" count 2 {
}
// CHECK: repeat "b": must be inside a dataflow.program

// -----

dataflow.access @A "X" at GLB reads 4 fills 4 updates 0 capacity 4 instances 1
// CHECK: access @A "X" at GLB: must be inside a dataflow.program

// -----

dataflow.buffer GLB bytes 4 holds ["X" = 4]
// CHECK: buffer GLB: must be inside a dataflow.program

// -----

dataflow.program @p arch "fusemax" {
  dataflow.pipeline "m1" count 4 {
    dataflow.repeat "e" count 2 {
    }
  }
}
// CHECK: pipeline "m1": a pipeline holds compute stages, not a dataflow.repeat

// -----

dataflow.program @p arch "fusemax" {
  dataflow.program @q arch "fusemax" {
  }
}
// CHECK: program @q: programs do not nest

// -----

dataflow.program @p arch "" {
}
// CHECK: program @p: arch must not be empty

// -----

dataflow.program @p arch "fusemax" {
  dataflow.access @A "X" at GLB reads -8 fills 0 updates 0 capacity 1 instances 1
}
// CHECK: access @A "X" at GLB: reads must be non-negative, got -8

// -----

dataflow.program @p arch "fusemax" {
  dataflow.access @A "X" at GLB reads 8 fills 0 updates 0 capacity 1 instances 0
}
// CHECK: access @A "X" at GLB: instances must be positive, got 0

// -----

dataflow.program @p arch "fusemax" {
  dataflow.buffer GLB bytes -4 holds ["X" = -4]
}
// CHECK: buffer GLB: "X" must hold a non-negative number of bytes, got -4

// -----

dataflow.program @p arch "fusemax" {
  dataflow.buffer GLB bytes 5 holds ["X" = 4]
}
// CHECK: buffer GLB: bytes 5 is not the sum of what it holds (4)

// -----

dataflow.program @p arch "fusemax" {
  dataflow.buffer GLB bytes 8 holds ["X" = 4, "X" = 4]
}
// CHECK: buffer GLB: a tensor is listed twice

// -----

dataflow.program @p arch "fusemax" {
  dataflow.compute @A on pe2d runs 4 times 1 ops {mac = 1, mac = 2} extent [256]
}
// CHECK: compute @A: an operation kind is listed twice
