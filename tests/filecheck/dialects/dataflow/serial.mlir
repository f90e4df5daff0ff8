// `dataflow.pipeline ... serial`: iterations run one at a time (lower-to-dataflow{overlap=false}).
// It round-trips in the custom and the generic form; only a pipeline can be serial.

// RUN: EINSUM_ROUNDTRIP
// RUN: einsum-opt %s --split-input-file | einsum-opt --split-input-file | filecheck %s
// RUN: einsum-opt %s --split-input-file --print-op-generic | filecheck %s --check-prefix=GENERIC

dataflow.program @attention arch "fusemax" {
  dataflow.repeat "p2" count 2 {
    dataflow.pipeline "m1, p1" count 16 serial {
      dataflow.compute @QK on pe2d runs 16 times 64 ops {mac = 1} extent [256, 256]
      dataflow.compute @RM on pe1d runs 16 times 1 ops {max = 1} extent [256] after [@QK] carried [@RM]
    }
  }
}

// CHECK:      dataflow.program @attention arch "fusemax" {
// CHECK-NEXT:   dataflow.repeat "p2" count 2 {
// CHECK-NEXT:     dataflow.pipeline "m1, p1" count 16 serial {
// CHECK-NEXT:       dataflow.compute @QK on pe2d runs 16 times 64 ops {mac = 1} extent [256, 256]
// CHECK-NEXT:       dataflow.compute @RM on pe1d runs 16 times 1 ops {max = 1} extent [256] after [@QK] carried [@RM]
// CHECK-NEXT:     }
// CHECK-NEXT:   }
// CHECK-NEXT: }

// GENERIC:      "dataflow.repeat"() <{loops = "p2", count = #builtin.int<2>}> ({
// GENERIC-NEXT:   "dataflow.pipeline"() <{loops = "m1, p1", count = #builtin.int<16>, serial}> ({

// -----

// `serial` comes before the attributes; a pipeline without it is not serial.
dataflow.program @flat arch "flat" {
  dataflow.pipeline "b, h, p2" count 768 serial attributes {note = "x"} {
    dataflow.compute @QK on pe2d runs 768 times 1024 ops {mac = 1} extent [256, 256]
    dataflow.buffer GLB bytes 2097152 holds ["QK, SN, A" = 2097152]
  }
  dataflow.pipeline "b, h, p2" count 768 {
    dataflow.compute @AV on pe2d runs 768 times 1024 ops {mac = 1} extent [256, 256]
  }
}

// CHECK:      dataflow.program @flat arch "flat" {
// CHECK-NEXT:   dataflow.pipeline "b, h, p2" count 768 serial attributes {note = "x"} {
// CHECK-NEXT:     dataflow.compute @QK on pe2d runs 768 times 1024 ops {mac = 1} extent [256, 256]
// CHECK-NEXT:     dataflow.buffer GLB bytes 2097152 holds ["QK, SN, A" = 2097152]
// CHECK-NEXT:   }
// CHECK-NEXT:   dataflow.pipeline "b, h, p2" count 768 {
// CHECK-NEXT:     dataflow.compute @AV

// GENERIC:      "dataflow.pipeline"() <{loops = "b, h, p2", count = #builtin.int<768>, serial}> ({
// GENERIC:      }) {note = "x"} : () -> ()
// GENERIC:      "dataflow.pipeline"() <{loops = "b, h, p2", count = #builtin.int<768>}> ({

// A repeat cannot be serial: in the custom form a parse error, in the generic form a verifier
// error, each one `error:` line (the whole output: `\A` anchors at its start).
// RUN: echo 'dataflow.program @p arch "fusemax" { dataflow.repeat "b" count 2 serial { } }' | not einsum-opt 2>&1 | filecheck %s --check-prefix=REPEAT
// REPEAT:     {{\A}}<stdin>:1:54: error: only a dataflow.pipeline can be serial{{$}}
// REPEAT-NOT: {{.}}

// RUN: echo '"dataflow.program"() <{sym_name = "p", arch = "fusemax"}> ({ "dataflow.repeat"() <{loops = "b", count = #builtin.int<2>, serial}> ({ ^bb0: }) : () -> () }) : () -> ()' | not einsum-opt 2>&1 | filecheck %s --check-prefix=GREPEAT
// GREPEAT:     {{\A}}error: <stdin>: repeat "b": only a dataflow.pipeline can be serial{{$}}
// GREPEAT-NOT: {{.}}
