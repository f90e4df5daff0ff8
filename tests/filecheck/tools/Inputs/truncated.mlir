builtin.module {
  einsum.cascade @x(
