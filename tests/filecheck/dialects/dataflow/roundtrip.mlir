// RUN: EINSUM_ROUNDTRIP
// RUN: einsum-opt %s --split-input-file | einsum-opt --split-input-file | filecheck %s

dataflow.program @attention arch "fusemax" {
  dataflow.repeat "b, h, p2" count 1536 {
    dataflow.pipeline "m1, p1" count 32768 {
      dataflow.compute @QK on pe2d runs 32768 times 64 ops {mac = 1} extent [256, 256]
      dataflow.compute @LM on pe2d runs 32768 times 1 ops {max = 1} extent [256, 256] after [@QK]
      dataflow.compute @RM on pe1d runs 32768 times 1 ops {max = 1} extent [256] after [@LM] carried [@RM]
      dataflow.compute @SLN on pe2d runs 32768 times 1 ops {exp = 1, add = 1} extent [256, 256] after [@RM]
      dataflow.compute @AV on pe1d runs 128 times 64 ops {div = 1} extent [256] after [@SLN, @RM]
    }
  }
  dataflow.access @QK "Q" at DRAM reads 50331648 fills 0 updates 0 capacity 50331648 instances 1
  dataflow.access @QK "K" at GLB reads 402653184 fills 402653184 updates 0 capacity 16384 instances 1
  dataflow.access @QK "QK" at pe2d.PE reads 0 fills 0 updates 123456789012345678901234567890 capacity 1 instances 65536
  dataflow.buffer GLB bytes 8454144 holds ["Q" = 8388608, "RM" = 65536]
}

// CHECK:      dataflow.program @attention arch "fusemax" {
// CHECK-NEXT:   dataflow.repeat "b, h, p2" count 1536 {
// CHECK-NEXT:     dataflow.pipeline "m1, p1" count 32768 {
// CHECK-NEXT:       dataflow.compute @QK on pe2d runs 32768 times 64 ops {mac = 1} extent [256, 256]
// CHECK-NEXT:       dataflow.compute @LM on pe2d runs 32768 times 1 ops {max = 1} extent [256, 256] after [@QK]
// CHECK-NEXT:       dataflow.compute @RM on pe1d runs 32768 times 1 ops {max = 1} extent [256] after [@LM] carried [@RM]
// CHECK-NEXT:       dataflow.compute @SLN on pe2d runs 32768 times 1 ops {exp = 1, add = 1} extent [256, 256] after [@RM]
// CHECK-NEXT:       dataflow.compute @AV on pe1d runs 128 times 64 ops {div = 1} extent [256] after [@SLN, @RM]
// CHECK-NEXT:     }
// CHECK-NEXT:   }
// CHECK-NEXT:   dataflow.access @QK "Q" at DRAM reads 50331648 fills 0 updates 0 capacity 50331648 instances 1
// CHECK-NEXT:   dataflow.access @QK "K" at GLB reads 402653184 fills 402653184 updates 0 capacity 16384 instances 1
// CHECK-NEXT:   dataflow.access @QK "QK" at pe2d.PE reads 0 fills 0 updates 123456789012345678901234567890 capacity 1 instances 65536
// CHECK-NEXT:   dataflow.buffer GLB bytes 8454144 holds ["Q" = 8388608, "RM" = 65536]
// CHECK-NEXT: }

// -----

// A plain sequence, an empty buffer, an empty program and extra attributes.
dataflow.program @seq arch "flat" attributes {note = "x"} {
  dataflow.compute @A on pe1d runs 4 times 2 ops {add = 1, mul = 2} extent [16] attributes {tag = 1 : i64}
  dataflow.compute @B on pe2d runs 1 times 1 ops {sqrt = 1, log = 1} extent [] after [@A]
  dataflow.access @B "B" at DRAM reads 0 fills 0 updates 0 capacity 0 instances 1
  dataflow.buffer RF bytes 0 holds []
}
dataflow.program @empty arch "edge" {
}

// CHECK:      dataflow.program @seq arch "flat" attributes {note = "x"} {
// CHECK-NEXT:   dataflow.compute @A on pe1d runs 4 times 2 ops {add = 1, mul = 2} extent [16] attributes {tag = 1 : i64}
// CHECK-NEXT:   dataflow.compute @B on pe2d runs 1 times 1 ops {sqrt = 1, log = 1} extent [] after [@A]
// CHECK-NEXT:   dataflow.access @B "B" at DRAM reads 0 fills 0 updates 0 capacity 0 instances 1
// CHECK-NEXT:   dataflow.buffer RF bytes 0 holds []
// CHECK-NEXT: }
// CHECK-NEXT: dataflow.program @empty arch "edge" {
