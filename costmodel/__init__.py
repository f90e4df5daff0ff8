"""The cost model: the analysis of mapped loop nests and the interpreter of dataflow programs
that reports cycles, utilisation, accesses per storage level, energy and area."""
