// RUN: einsum-opt %s --split-input-file --verify-diagnostics

dataflow.program @p arch "fusemax" {
  // expected-error @below {{compute @QK: runs must be positive, got 0}}
  dataflow.compute @QK on pe2d runs 0 times 64 ops {mac = 1} extent [256, 256]
}

// -----

dataflow.program @p arch "fusemax" {
  // expected-error @+1 {{compute @QK: times must be positive, got -2}}
  dataflow.compute @QK on pe2d runs 1 times -2 ops {mac = 1} extent [256, 256]
}

// -----

dataflow.program @p arch "fusemax" {
  // expected-error @+1 {{repeat "b, h": count must be positive, got 0}}
  dataflow.repeat "b, h" count 0 {
  }
}

// -----

dataflow.program @p arch "fusemax" {
  // expected-error @+1 {{pipeline "m1": count must be positive, got -1}}
  dataflow.pipeline "m1" count -1 {
  }
}

// -----

dataflow.program @p arch "fusemax" {
  // expected-error @+1 {{compute @QK: extent must be positive, got [256, 0]}}
  dataflow.compute @QK on pe2d runs 1 times 1 ops {mac = 1} extent [256, 0]
}

// -----

dataflow.program @p arch "fusemax" {
  // expected-error @+1 {{compute @QK: unknown operation kind 'fma' (the kinds are mac, mul, add, max, exp, div, sqrt, log)}}
  dataflow.compute @QK on pe2d runs 1 times 1 ops {fma = 1} extent [256]
}

// -----

dataflow.program @p arch "fusemax" {
  // expected-error @+1 {{compute @QK: ops count of mac must be positive, got 0}}
  dataflow.compute @QK on pe2d runs 1 times 1 ops {mac = 0} extent [256]
}

// -----

dataflow.program @p arch "fusemax" {
  // expected-error @+1 {{compute @QK: ops must list at least one operation}}
  dataflow.compute @QK on pe2d runs 1 times 1 ops {} extent [256]
}

// -----

dataflow.program @p arch "fusemax" {
  dataflow.pipeline "m1" count 4 {
    // expected-error @+1 {{compute @QK: runs 5 exceeds the enclosing pipeline's count 4}}
    dataflow.compute @QK on pe2d runs 5 times 1 ops {mac = 1} extent [256]
  }
}

// -----

dataflow.program @p arch "fusemax" {
  dataflow.pipeline "m1" count 4 {
    // expected-error @+1 {{compute @QK: after names @XX, which is not a compute stage of the same pipeline}}
    dataflow.compute @QK on pe2d runs 4 times 1 ops {mac = 1} extent [256] after [@XX]
  }
}

// -----

dataflow.program @p arch "fusemax" {
  dataflow.compute @A on pe2d runs 4 times 1 ops {mac = 1} extent [256]
  dataflow.pipeline "m1" count 4 {
    // expected-error @+1 {{compute @QK: carried names @A, which is not a compute stage of the same pipeline}}
    dataflow.compute @QK on pe2d runs 4 times 1 ops {mac = 1} extent [256] carried [@A]
  }
}

// -----

dataflow.program @p arch "fusemax" {
  // expected-error @+1 {{compute @A: after names @Z, which is not a compute stage of the same block}}
  dataflow.compute @A on pe2d runs 4 times 1 ops {mac = 1} extent [256] after [@Z]
}

// -----

dataflow.program @p arch "fusemax" {
  dataflow.pipeline "m1" count 4 {
    dataflow.compute @A on pe2d runs 4 times 1 ops {mac = 1} extent [256] after [@C]
    // expected-error @+1 {{pipeline "m1": the after dependencies form a cycle: @A -> @C -> @B -> @A}}
    dataflow.compute @B on pe2d runs 4 times 1 ops {mac = 1} extent [256] after [@A]
    dataflow.compute @C on pe2d runs 4 times 1 ops {mac = 1} extent [256] after [@B]
  }
}

// -----

dataflow.program @p arch "fusemax" {
  // expected-error @+1 {{program @p: the after dependencies form a cycle: @A -> @A}}
  dataflow.compute @A on pe2d runs 4 times 1 ops {mac = 1} extent [256] after [@A]
}

// -----

dataflow.program @p arch "fusemax" {
  dataflow.compute @A on pe2d runs 4 times 1 ops {mac = 1} extent [256]
  // expected-error @+1 {{program @p: two compute stages named @A in one block}}
  dataflow.compute @A on pe1d runs 4 times 1 ops {mac = 1} extent [256]
}

// -----

// expected-error @+1 {{compute @A: must be inside a dataflow.program}}
dataflow.compute @A on pe2d runs 4 times 1 ops {mac = 1} extent [256]

// -----

// expected-error @+1 {{repeat "b": must be inside a dataflow.program}}
dataflow.repeat "b" count 2 {
}

// -----

// expected-error @+1 {{access @A "X" at GLB: must be inside a dataflow.program}}
dataflow.access @A "X" at GLB reads 4 fills 4 updates 0 capacity 4 instances 1

// -----

// expected-error @+1 {{buffer GLB: must be inside a dataflow.program}}
dataflow.buffer GLB bytes 4 holds ["X" = 4]

// -----

dataflow.program @p arch "fusemax" {
  dataflow.pipeline "m1" count 4 {
    // expected-error @+1 {{pipeline "m1": a pipeline holds compute stages, not a dataflow.repeat}}
    dataflow.repeat "e" count 2 {
    }
  }
}

// -----

dataflow.program @p arch "fusemax" {
  // expected-error @+1 {{program @q: programs do not nest}}
  dataflow.program @q arch "fusemax" {
  }
}

// -----

// expected-error @+1 {{program @p: arch must not be empty}}
dataflow.program @p arch "" {
}

// -----

dataflow.program @p arch "fusemax" {
  // expected-error @+1 {{access @A "X" at GLB: reads must be non-negative, got -8}}
  dataflow.access @A "X" at GLB reads -8 fills 0 updates 0 capacity 1 instances 1
}

// -----

dataflow.program @p arch "fusemax" {
  // expected-error @+1 {{access @A "X" at GLB: instances must be positive, got 0}}
  dataflow.access @A "X" at GLB reads 8 fills 0 updates 0 capacity 1 instances 0
}

// -----

dataflow.program @p arch "fusemax" {
  // expected-error @+1 {{buffer GLB: "X" must hold a non-negative number of bytes, got -4}}
  dataflow.buffer GLB bytes -4 holds ["X" = -4]
}

// -----

dataflow.program @p arch "fusemax" {
  // expected-error @+1 {{buffer GLB: bytes 5 is not the sum of what it holds (4)}}
  dataflow.buffer GLB bytes 5 holds ["X" = 4]
}

// -----

dataflow.program @p arch "fusemax" {
  // expected-error @+1 {{buffer GLB: a tensor is listed twice}}
  dataflow.buffer GLB bytes 8 holds ["X" = 4, "X" = 4]
}

// -----

dataflow.program @p arch "fusemax" {
  // expected-error @+1 {{compute @A: an operation kind is listed twice}}
  dataflow.compute @A on pe2d runs 4 times 1 ops {mac = 1, mac = 2} extent [256]
}
